/** The cluster tests' etcd (Debian's etcd-server, installed when missing): see scripts/lib/etcd.ts. */
export { ETCD_BIN, ensureEtcdInstalled, startEtcd, type EtcdProcess } from '../../scripts/lib/etcd.ts';

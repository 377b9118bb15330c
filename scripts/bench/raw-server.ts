/**
 * The raw baseline's server as a process of its own, like our target: prints
 * {"port":N} once listening, then answers each "stats" line on stdin with its
 * CPU time and memory ({"cpu":{user,system},"rss","maxRSS"}), as the target's
 * control method `stats` does.
 */
import readline from 'node:readline';
import { startRawServer } from './raw.ts';

const srv = await startRawServer(0);
process.stdout.write(`${JSON.stringify({ port: srv.port })}\n`);
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() === 'stats') {
    process.stdout.write(`${JSON.stringify({ cpu: process.cpuUsage(), rss: process.memoryUsage().rss, maxRSS: process.resourceUsage().maxRSS })}\n`);
  }
});
rl.on('close', () => void srv.close().then(() => process.exit(0)));

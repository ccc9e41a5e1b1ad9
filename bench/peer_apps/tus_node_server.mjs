// The Node peer: @tus/server with @tus/file-store on node:http, as its README shows.
// Run by bench/peers.py from the peer's scratch directory (where node_modules is):
//   node tus_node_server.mjs <files dir> <port> <max size in bytes>
// FileStore writes each PATCH body to <files dir>/<upload id> as a stream; nothing is
// hashed or checked.
import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const [directory, port, maxSize] = process.argv.slice(2);
const tus = new Server({ path: '/files', datastore: new FileStore({ directory }), maxSize: Number(maxSize) });

http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    return;
  }
  tus.handle(req, res);
}).listen(Number(port), '127.0.0.1');

// A TCP server for the network harness's own tests, run inside a namespace:
// `node byte-server.mjs <port>`. Each connection sends some bytes and ends its side; the
// server counts them, then sends as many back and closes. It prints `listening <port>` once
// ready and exits by itself after 60 s.
import net from 'node:net';

const port = Number(process.argv[2]);
const server = net.createServer((socket) => {
  let received = 0;
  socket.on('data', (chunk) => {
    received += chunk.length;
  });
  socket.on('end', () => socket.end(Buffer.alloc(received)));
  socket.on('error', () => socket.destroy());
});
server.listen(port, '0.0.0.0', () => console.log(`listening ${port}`));
setTimeout(() => process.exit(0), 60_000).unref();
setTimeout(() => server.close(), 60_000);

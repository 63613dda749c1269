import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Answers to pipelined requests (HTTP/1.1 lets a client send its next requests before the first is
 * answered). Node runs their handlers at once, so they are forwarded, but queues their answers
 * behind the first one, without a socket. If the connection closes before an answer's turn, Node
 * aborts the requests and leaves those answers as they are: never destroyed, no 'close'. Their rows
 * (written on 'close') would be lost, their upstream requests would run on for nobody, and a stop
 * would wait for them until its deadline. Here they are closed with the connection, as Node closes
 * the answer that holds it.
 */
const queued = new WeakMap<Socket, Set<ServerResponse>>();

/** Closes `res` (destroyed, then 'close') if `socket` closes before `res` gets it. */
export function closeWithConnection(res: ServerResponse, socket: Socket): void {
  let waiting = queued.get(socket);
  if (waiting === undefined) {
    // One listener per connection, however many answers wait on it.
    const answers = (waiting = new Set());
    queued.set(socket, answers);
    socket.once('close', () => {
      queued.delete(socket);
      for (const answer of answers) {
        answer.destroy();
        answer.emit('close');
      }
    });
  }
  waiting.add(res);
  // Its turn came: from now on Node closes it with the connection itself.
  res.once('socket', () => waiting.delete(res));
}

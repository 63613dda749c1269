import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { InFlight } from './http/inFlight.js';
import { FileKeySource } from './keys/fileKeySource.js';
import { KeyRing } from './keys/keyRing.js';
import { SharedKeySource } from './keys/sharedKeySource.js';
import { BudgetTracker } from './policy/budget.js';
import { RateLimiter } from './policy/rateLimiter.js';
import { createForwarder } from './proxy/forward.js';
import { UpstreamPool } from './upstream/pool.js';
import { probeUpstreamKey } from './upstream/probe.js';
import { AccessLog } from './logging/accessLog.js';
import { createLogger } from './logging/logger.js';
import { SqliteUsageStore } from './storage/sqlite/sqliteUsageStore.js';
import { Meter } from './usage/meter.js';
import { Pricing } from './usage/pricing.js';

export interface RunningServer {
  url: string;
  server: http.Server;
  /** Stops accepting, lets in-flight requests finish (up to shutdownTimeoutMs), writes their rows, closes. */
  stop(): Promise<void>;
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const fileKeys = new FileKeySource(config.keysFile, log, config.defaults);
  fileKeys.load();
  await fileKeys.watch();
  const keys = new KeyRing(config.proxyKey ? [new SharedKeySource(config.proxyKey, config.defaults), fileKeys] : [fileKeys]);
  const store = new SqliteUsageStore(config.usageDb, (err, rows) => log.error({ err, rows }, 'could not write usage rows'), {
    onCheckpointError: (err, walKept) =>
      walKept
        ? log.error({ err }, 'usage database: the disk failed to sync a checkpoint; its WAL is kept for recovery and grows until Keyward restarts')
        : log.warn({ err }, "usage database: a checkpoint's sync failed; SQLite checkpoints on its own from now on"),
  });
  const pricing = Pricing.bundled(config.prices);
  const meter = new Meter(store, pricing, log);
  const today = new Date();
  const dayStart = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate());
  const monthStart = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1);
  const engine = {
    limiter: new RateLimiter(),
    budgets: new BudgetTracker(store.spendByKey(dayStart, monthStart)),
    pricing,
  };
  const pool = new UpstreamPool(config.upstreamKeys, { log });
  pool.startRevival(probeUpstreamKey(config.upstreamBaseUrl));
  const { forward, close: closeUpstream } = createForwarder({
    baseUrl: config.upstreamBaseUrl,
    pool,
    timeoutMs: config.upstreamTimeoutMs,
    stallTimeoutMs: config.clientStallTimeoutMs,
    maxBodyBytes: config.maxBodyBytes,
  });
  const accessLog = new AccessLog(config.accessLog, config.logBodies, (err) =>
    log.error({ err: (err as NodeJS.ErrnoException).code ?? err.message }, 'access log: a batch of lines could not be written'),
  );
  const inFlight = new InFlight();
  const app = createApp({ config, keys, engine, forward, pool, store, meter, accessLog, log, inFlight });

  const server = http.createServer(app.handle);
  server.on('upgrade', app.upgrade);
  // Longer than common load balancers' idle timeout, so they never reuse a connection we just closed.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host === '0.0.0.0' ? 'localhost' : host}:${port}`;
  log.info({ url: `${url}/v1`, upstream: config.upstreamBaseUrl.origin, keys: fileKeys.size + (config.proxyKey ? 1 : 0) }, 'Keyward is listening');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info({ inFlight: inFlight.size }, 'stopping: no new connections, waiting for requests in flight');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = Date.now() + config.shutdownTimeoutMs;
      while (inFlight.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (inFlight.size) {
        log.warn({ inFlight: inFlight.size }, 'shutdown timeout: cutting the remaining requests');
        for (const ctx of inFlight.values()) {
          ctx.outcome ??= 'stream_broken';
          ctx.error ??= 'cut by shutdown';
        }
        server.closeAllConnections();
        for (const ctx of inFlight.values()) ctx.cut?.();
        // Their 'close' events write their rows.
        for (let i = 0; i < 20 && inFlight.size; i++) await new Promise((r) => setTimeout(r, 10));
      }
      // Connections that carried the last requests are idle now; keep-alive would hold them open.
      server.closeIdleConnections();
      const idleCheck = setInterval(() => server.closeIdleConnections(), 50);
      // A connection can outlive its request (a client still uploading after its answer): past the
      // deadline it is cut too, so a stop never waits longer than shutdownTimeoutMs (plus a little).
      const cutAll = setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now()) + 200);
      await closed;
      clearInterval(idleCheck);
      clearTimeout(cutAll);
      pool.stop();
      await closeUpstream();
      store.close();
      await accessLog.close();
      await keys.close();
      log.info('stopped');
    })());
  return { url, server, stop };
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`keyward: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  let running: RunningServer;
  try {
    running = await startServer(config, log);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`keyward: cannot start: ${e.code === 'EADDRINUSE' ? `port ${config.port} is in use` : e.message}\n`);
    process.exit(1);
  }
  const onSignal = (signal: string) => {
    log.info({ signal }, 'signal received');
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();

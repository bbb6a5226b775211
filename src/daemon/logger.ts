/**
 * Structured daemon logging: one JSON object per line on stderr ({level, time, msg, ...fields}),
 * and every record is also offered to subscribers (the observe service's daemon log stream),
 * after a bounded in-memory backlog.
 */
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LogRecord {
  level: Level;
  /** milliseconds since the epoch */
  time: number;
  msg: string;
  fields?: Record<string, unknown>;
  /** the JSON line as written to stderr, without the newline */
  line: string;
}

export type LogListener = (record: LogRecord) => void;

export class Logger {
  private minLevel: number;
  private readonly listeners = new Set<LogListener>();
  private readonly backlog: LogRecord[] = [];
  readonly backlogLimit: number;
  private readonly write: (line: string) => void;

  constructor(opts: { level?: Level; backlogLimit?: number; write?: (line: string) => void } = {}) {
    this.minLevel = ORDER[opts.level ?? "info"];
    this.backlogLimit = opts.backlogLimit ?? 1000;
    this.write = opts.write ?? ((line) => process.stderr.write(line + "\n"));
  }

  setLevel(level: Level): void {
    this.minLevel = ORDER[level];
  }

  debug(msg: string, fields?: Record<string, unknown>): void { this.log("debug", msg, fields); }
  info(msg: string, fields?: Record<string, unknown>): void { this.log("info", msg, fields); }
  warn(msg: string, fields?: Record<string, unknown>): void { this.log("warn", msg, fields); }
  error(msg: string, fields?: Record<string, unknown>): void { this.log("error", msg, fields); }

  log(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (ORDER[level] < this.minLevel) return;
    const time = Date.now();
    const line = JSON.stringify({ level, time: new Date(time).toISOString(), msg, ...fields });
    const record: LogRecord = { level, time, msg, fields, line };
    this.write(line);
    this.backlog.push(record);
    if (this.backlog.length > this.backlogLimit) this.backlog.shift();
    for (const l of this.listeners) {
      try { l(record); } catch { /* a listener never breaks logging */ }
    }
  }

  /** Returns the recent backlog (oldest first) and subscribes to new records atomically. */
  subscribe(listener: LogListener): { backlog: LogRecord[]; unsubscribe: () => void } {
    this.listeners.add(listener);
    return { backlog: [...this.backlog], unsubscribe: () => this.listeners.delete(listener) };
  }
}

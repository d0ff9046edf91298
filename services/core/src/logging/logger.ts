import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** Structured JSON logs; credentials are redacted wherever they appear in a log object. */
export function createLogger(options: { level?: string; name?: string } & LoggerOptions = {}): Logger {
  return pino({
    level: options.level ?? 'info',
    base: { service: options.name ?? 'cairn' },
    redact: {
      paths: [
        'token',
        '*.token',
        'authorization',
        '*.authorization',
        'headers.authorization',
        'req.headers.authorization',
        'secretAccessKey',
        '*.secretAccessKey',
        'password',
        '*.password',
      ],
      censor: '***',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
    ...options,
  });
}

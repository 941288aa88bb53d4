/**
 * Outgoing mail. With SMTP_URL it goes through nodemailer; without, to a development mailbox:
 * each message is written under <data dir>/mail/ and its arrival (not its contents) is logged,
 * so `npm start` works offline and login links never reach the log.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Transporter } from 'nodemailer';
import type { Logger } from 'pino';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  /**
   * The Message-ID, made from what asked for the mail (the outbox event's id): a mail sent again
   * (a worker that died after the server took it) has the same id, so a mailbox can tell it is
   * the same mail. nodemailer would otherwise draw a random one for every message.
   */
  messageId?: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
  close?(): void;
}

/**
 * Whether a send failed because the mail server permanently refused the recipient (a 5xx answer to
 * RCPT TO): the address is wrong, and trying again will not help. Any other failure (no connection,
 * a timeout, refused credentials, a temporary 4xx, a full disk for the development mailbox) is the
 * mail service's, not the sender's.
 */
export function isRecipientRefused(err: unknown): boolean {
  const { code, command, responseCode, rejected } = (err ?? {}) as { code?: unknown; command?: unknown; responseCode?: unknown; rejected?: unknown };
  if (code !== 'EENVELOPE' || typeof responseCode !== 'number' || responseCode < 500 || responseCode >= 600) return false;
  return command === 'RCPT TO' || (Array.isArray(rejected) && rejected.length > 0);
}

/**
 * nodemailer is loaded with the first message, not at start-up: a server that has sent no mail yet
 * does not hold its modules (part of the idle-memory budget, issue #6).
 */
export function createSmtpMailer(smtpUrl: string, from: string): Mailer {
  let transport: Promise<Transporter> | undefined;
  let closed = false;
  return {
    async send(message) {
      transport ??= import('nodemailer').then(({ default: nodemailer }) => nodemailer.createTransport(smtpUrl));
      const opened = await transport;
      // Closed while nodemailer was loading: this one message goes, and the pool is not left open.
      try {
        await opened.sendMail({ from, to: message.to, subject: message.subject, text: message.text, ...(message.messageId ? { messageId: message.messageId } : {}) });
      } finally {
        if (closed) opened.close();
      }
    },
    close() {
      closed = true;
      void transport?.then((opened) => opened.close());
    },
  };
}

export function createDevMailbox(dir: string, log: Logger): Mailer {
  let sequence = 0;
  return {
    async send(message) {
      await mkdir(dir, { recursive: true });
      const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${++sequence}.txt`;
      const file = path.join(dir, name);
      await writeFile(file, `To: ${message.to}\nSubject: ${message.subject}\n\n${message.text}\n`, { mode: 0o600 });
      log.info({ to: message.to, subject: message.subject, file }, 'mail written to the development mailbox');
    },
  };
}

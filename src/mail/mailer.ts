/**
 * Outgoing mail. With SMTP_URL it goes through nodemailer; without, to a development mailbox:
 * each message is written under <data dir>/mail/ and its arrival (not its contents) is logged,
 * so `npm start` works offline and login links never reach the log.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import nodemailer from 'nodemailer';
import type { Logger } from 'pino';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
  close?(): void;
}

export function createSmtpMailer(smtpUrl: string, from: string): Mailer {
  const transport = nodemailer.createTransport(smtpUrl);
  return {
    async send(message) {
      await transport.sendMail({ from, to: message.to, subject: message.subject, text: message.text });
    },
    close() {
      transport.close();
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

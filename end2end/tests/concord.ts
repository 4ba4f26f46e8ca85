// Drives the real `concord` binary: starts it on a fresh data dir, runs the ground-floor loop
// in Chromium, restarts it, and checks that nothing was lost.
import { expect, Page } from '@playwright/test';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const repo = path.resolve(__dirname, '..', '..');
export const binary = process.env.CONCORD_BIN || path.join(repo, 'target', 'debug', 'concord');

/**
 * A `concord` binary copied alone into an empty folder and run from there: every asset the UI
 * needs must come from inside the binary.
 */
export class Concord {
  proc?: ChildProcess;
  base = '';
  /** Everything the server wrote to stderr so far (its log). */
  log = '';
  constructor(readonly home: string, readonly exe: string, readonly dataDir: string) {}

  static fresh(): Concord {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-e2e-'));
    const exe = path.join(home, 'concord');
    fs.copyFileSync(binary, exe);
    fs.chmodSync(exe, 0o755);
    return new Concord(home, exe, path.join(home, 'data'));
  }

  /** Runs a CLI subcommand against this data dir (the server must be stopped). */
  cli(args: string[], input = ''): string {
    const r = spawnSync(this.exe, [...args, '--data-dir', this.dataDir], { input, encoding: 'utf8', cwd: this.home });
    if (r.status !== 0) throw new Error(`concord ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  }

  /** Starts `concord serve` on a free port; `extra` are more flags (e.g. `--models DIR`). */
  async start(extra: string[] = []): Promise<void> {
    const proc = spawn(this.exe, ['serve', '--addr', '127.0.0.1:0', '--data-dir', this.dataDir, ...extra], {
      cwd: this.home,
      env: { ...process.env, RUST_LOG: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.base = await new Promise<string>((resolve, reject) => {
      let log = '';
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 30_000);
      proc.stderr!.on('data', (chunk: Buffer) => {
        log += chunk.toString();
        this.log += chunk.toString();
        const m = log.match(/listening on (http:\/\/[0-9.:]+)/);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
    });
  }

  /** Stops the server and deletes the folder (a copy of the binary and the data: hundreds of MB). */
  async dispose(): Promise<void> {
    await this.stop();
    fs.rmSync(this.home, { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.on('exit', () => resolve());
      proc.kill('SIGINT');
    });
  }
}

/**
 * A caller of the JSON API at `base` as the owner of each bearer token in `tokens` (by user
 * name): fails the test on a status of 300 or more, and answers the parsed JSON (null for 204).
 */
export function apiAs(base: string, tokens: Record<string, string>) {
  return async (who: string, method: string, url: string, body?: unknown, raw?: string) => {
    const r = await fetch(`${base}/api/v1${url}`, {
      method,
      headers: { authorization: `Bearer ${tokens[who]}`, 'content-type': 'application/json' },
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    expect(r.status, `${method} ${url}`).toBeLessThan(300);
    return r.status === 204 ? null : r.json();
  };
}

/** Submits the login form with `name` and `password` (after dropping any earlier session). */
export async function submitSignIn(page: Page, base: string, name: string, password: string) {
  await page.context().clearCookies();
  await page.goto(`${base}/login`);
  await page.locator('body[data-hydrated=true]').waitFor();
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Signs in through the login form (after dropping any earlier session). */
export async function signIn(page: Page, base: string, name: string, password: string) {
  await submitSignIn(page, base, name, password);
  await expect(page.getByTestId('signed-in-as')).toHaveText(name);
}

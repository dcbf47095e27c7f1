/**
 * The web console end to end: headless Chromium (Debian's `chromium`, driven by
 * playwright-core) against the real built server with real sandboxes. Every
 * wait is for something to appear, never for a fixed time.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, type ServerProcess, startServer, TEST_API_KEY, TEST_MASTER_KEY } from "../helpers/server-process.ts";

const CHROMIUM = "/usr/bin/chromium";
/** Test output stays out of the work tree's tracked files (.cache/ is git-ignored); docs/screenshots/ holds the copies the README shows. */
const SCREENSHOTS = join(REPO_ROOT, ".cache/screenshots");
const WAIT = { timeout: 60_000 };

interface ConsoleHook {
  transcript(): string;
  dropSocket(): void;
  sessionId(): string | undefined;
  setCode(code: string): void;
}
declare global {
  interface Window {
    __console: ConsoleHook;
  }
}

let server: ServerProcess;
let browser: Browser;
let context: BrowserContext;
let page: Page;

/** A browser context with the key already entered once (localStorage), on the console. */
async function openConsole(key: string, hash = ""): Promise<{ context: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 800 } });
  await ctx.addInitScript((k) => localStorage.setItem("ci.apiKey", k), key);
  const p = await ctx.newPage();
  await p.goto(`${server.httpUrl}/${hash}`);
  return { context: ctx, page: p };
}

const transcript = (p: Page) => p.evaluate(() => window.__console.transcript());
const waitForText = (p: Page, text: string) => p.waitForFunction((t) => window.__console.transcript().includes(t), text, WAIT);
/** The exec's exit line, once it is there. */
async function waitForExit(p: Page): Promise<string> {
  await p.waitForSelector("#exit-status[data-reason]", WAIT);
  return (await p.textContent("#exit-status")) ?? "";
}
async function runCode(p: Page, code: string): Promise<void> {
  await p.evaluate((c) => window.__console.setCode(c), code);
  await p.click("#run");
}

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  // Its own sandbox uid and no warm pool: RLIMIT_NPROC counts per uid across the machine, and the
  // integration suites running beside this one measure their sandboxes' process limits under uid 1001.
  server = await startServer({ transport: "uws", env: { SANDBOX_UID: "1002", SANDBOX_GID: "1002", SANDBOX_POOL_ENABLED: "false" } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  ({ context, page } = await openConsole(TEST_API_KEY));
  await page.waitForSelector('#status[data-status="connected"]', WAIT);
  await page.waitForSelector('#lang option[value="py"]', { state: "attached", ...WAIT });
});

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await browser?.close();
  await server?.stop();
});

describe("web console", () => {
  it("is served at / without auth, with content types and cache headers", async () => {
    const index = await fetch(`${server.httpUrl}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toContain("text/html");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const script = (await index.text()).match(/\/assets\/[\w.-]+\.js/)?.[0];
    expect(script).toBeDefined();
    const asset = await fetch(`${server.httpUrl}${script}`);
    expect(asset.headers.get("content-type")).toContain("text/javascript");
    expect(asset.headers.get("cache-control")).toContain("immutable");
    expect((await fetch(`${server.httpUrl}/assets/..%2f..%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${server.httpUrl}/health`)).status).toBe(200);
  });

  it("runs Python with Ctrl+Enter and shows the first line before the program ends", async () => {
    await page.evaluate(() => window.__console.setCode('import time\nprint("first line", flush=True)\ntime.sleep(3)\nprint("last line")\n'));
    await page.click(".cm-content");
    await page.keyboard.press("Control+Enter");
    await waitForText(page, "first line");
    expect(await transcript(page)).not.toContain("last line");
    expect(await page.$("#exit-status[data-reason]")).toBeNull();
    // The real terminal rendered it too.
    await page.waitForFunction(() => document.querySelector(".xterm-rows")?.textContent?.includes("first line"), undefined, WAIT);
    await waitForText(page, "last line");
    expect(await waitForExit(page)).toContain("exited");
  });

  it("answers an input() prompt typed into the terminal", async () => {
    await runCode(page, 'name = input("your name? ")\nprint(f"hello {name}!")\n');
    await waitForText(page, "your name? ");
    await page.click("#terminal");
    await page.keyboard.type("Ada");
    await page.keyboard.press("Enter");
    await waitForText(page, "hello Ada!");
    expect(await waitForExit(page)).toContain("exit 0");
  });

  it("stops an endless loop", async () => {
    await runCode(page, 'print("looping", flush=True)\nwhile True:\n    pass\n');
    await waitForText(page, "looping");
    await page.click("#stop");
    const exit = await waitForExit(page);
    expect(exit).not.toContain("timeout");
    expect(await page.getAttribute("#exit-status", "data-reason")).toMatch(/killed|signaled|exited/);
  });

  it("escalates Stop to SIGKILL when the program ignores SIGINT", async () => {
    await runCode(page, 'import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint("deaf", flush=True)\nwhile True:\n    pass\n');
    await waitForText(page, "deaf");
    await page.click("#stop");
    expect(await waitForExit(page)).toMatch(/killed|signaled/);
    expect(await waitForExit(page)).toContain("SIGKILL");
  });

  it("keeps ANSI colours and shows stderr apart from stdout", async () => {
    await runCode(page, 'import sys\nprint("\\x1b[32mgreen text\\x1b[0m", flush=True)\nprint("an error line", file=sys.stderr, flush=True)\n');
    await waitForText(page, "an error line");
    await waitForExit(page);
    // xterm's DOM renderer gives coloured cells a class per palette colour: 2 is green, 1 is red (stderr).
    await page.waitForSelector('.xterm-rows span.xterm-fg-2:has-text("green")', WAIT);
    await page.waitForSelector('.xterm-rows span.xterm-fg-1:has-text("error")', WAIT);
  });

  it("uploads a CSV with progress and reads its row count", async () => {
    await page.setInputFiles("#upload", { name: "data.csv", mimeType: "text/csv", buffer: Buffer.from("x,y\n1,2\n3,4\n5,6\n") });
    await page.waitForSelector('#file-list li:has-text("data.csv")', WAIT);
    await runCode(page, 'import csv\nrows = list(csv.DictReader(open("data.csv")))\nprint(f"rows={len(rows)}")\n');
    await waitForText(page, "rows=3");
    expect(await waitForExit(page)).toContain("exit 0");
  });

  it("shows a matplotlib plot inline", async () => {
    await runCode(page, 'import matplotlib.pyplot as plt\nplt.plot([1, 3, 2, 4])\nplt.title("inline")\nplt.show()\nprint("plotted")\n');
    await page.waitForSelector("#displays img", WAIT);
    await page.waitForFunction(() => ((document.querySelector("#displays img") as HTMLImageElement | null)?.naturalWidth ?? 0) > 0, undefined, WAIT);
    await waitForExit(page);
    await page.screenshot({ path: join(SCREENSHOTS, "console.png") });
  });

  it("downloads a generated file", async () => {
    await runCode(page, 'open("report.txt", "w").write("generated by the console test\\n")\nprint("written")\n');
    await waitForText(page, "written");
    await waitForExit(page);
    const item = page.locator('#file-list li:has-text("report.txt")');
    await item.waitFor(WAIT);
    const [download] = await Promise.all([page.waitForEvent("download", WAIT), item.getByRole("button", { name: "Download report.txt" }).click()]);
    expect(download.suggestedFilename()).toBe("report.txt");
    expect(readFileSync((await download.path())!, "utf8")).toBe("generated by the console test\n");
  });

  it("deletes a file from the files panel", async () => {
    const item = page.locator('#file-list li:has-text("report.txt")');
    await item.getByRole("button", { name: "Delete report.txt" }).click();
    await item.waitFor({ state: "detached", ...WAIT });
    await runCode(page, 'import os\nprint("exists" if os.path.exists("report.txt") else "gone")\n');
    await waitForExit(page);
    expect(await transcript(page)).toContain("gone");
  });

  it("attaches a second tab to the session by id and sees its output", async () => {
    const sessionId = (await page.evaluate(() => window.__console.sessionId()))!;
    const other = await openConsole(TEST_API_KEY);
    try {
      await other.page.waitForSelector('#status[data-status="connected"]', WAIT);
      await other.page.fill("#attach-id", sessionId);
      await other.page.click("#attach");
      await other.page.waitForFunction((id) => document.querySelector("#session-id")?.textContent === id, sessionId, WAIT);
      await runCode(page, 'print("shared output")\n');
      await waitForText(other.page, "shared output");
    } finally {
      await other.context.close();
    }
  });

  it("resumes after the socket drops without losing or repeating output", async () => {
    await runCode(page, 'import time\nfor i in range(8):\n    print(f"tick {i}", flush=True)\n    time.sleep(0.4)\nprint("done")\n');
    await waitForText(page, "tick 1");
    await page.evaluate(() => window.__console.dropSocket());
    await page.waitForSelector('#status[data-status="resumed"]', WAIT);
    await waitForText(page, "done");
    const lines = (await transcript(page)).split("\n").filter((line) => line.startsWith("tick "));
    expect(lines).toEqual(Array.from({ length: 8 }, (_, i) => `tick ${i}`));
    expect(await waitForExit(page)).toContain("exit 0");
  });

  it("is readable on a phone, in the dark theme", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    try {
      await phone.addInitScript((k) => {
        localStorage.setItem("ci.apiKey", k);
        localStorage.setItem("ci.theme", "dark");
      }, TEST_API_KEY);
      const p = await phone.newPage();
      await p.goto(`${server.httpUrl}/`);
      await p.waitForSelector('#status[data-status="connected"]', WAIT);
      expect(await p.getAttribute("html", "data-theme")).toBe("dark");
      await runCode(p, 'for i in range(3):\n    print(f"phone line {i}")\n');
      await waitForText(p, "phone line 2");
      await waitForExit(p);
      // Nothing wider than the screen: the panes fold into one column.
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await p.screenshot({ path: join(SCREENSHOTS, "console-phone-dark.png") });
    } finally {
      await phone.close();
    }
  });

  it("operator view lists an execution started from another tab and manages keys", async () => {
    const operator = await openConsole(TEST_MASTER_KEY, "#operator");
    try {
      const op = operator.page;
      await op.waitForSelector("#pool dt", WAIT);
      await op.waitForSelector("#keys", { state: "attached", ...WAIT });
      // Started from the first tab (another context, the ordinary API key).
      const sessionId = await page.evaluate(() => window.__console.sessionId());
      expect(sessionId).toBeTruthy();
      await runCode(page, 'print("seen by the operator")\n');
      await waitForExit(page);
      await op.waitForSelector(`#executions tr:has-text("${sessionId}"):has-text("finished")`, WAIT);
      // Create a key: shown once, then listed.
      await op.fill("#key-name", "browser-test");
      await op.click('#key-create button[type="submit"]');
      await op.waitForSelector("#key-created:has-text('sk-')", WAIT);
      await op.waitForSelector('#keys tr:has-text("browser-test")', WAIT);
      await op.locator('#keys tr:has-text("browser-test")').getByRole("button", { name: "Disable" }).click();
      await op.waitForSelector('#keys tr:has-text("browser-test") button:has-text("Enable")', WAIT);
      await op.screenshot({ path: join(SCREENSHOTS, "operator.png") });
    } finally {
      await operator.context.close();
    }
  });
});

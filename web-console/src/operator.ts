import type { ServerFrame } from "../../protocol/index.ts";
import { api } from "./api.ts";
import { subscribeEvents } from "./connection.ts";

interface KeyRow {
  key_hash: string;
  name: string;
  enabled: boolean;
  usage: { requests: number };
}

const MAX_ROWS = 200;

function cell(text: string): HTMLTableCellElement {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function button(label: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.onclick = onClick;
  return b;
}

/** The operator view (master key): live events, pool figures, API keys. */
export function startOperator(key: string, el: (id: string) => HTMLElement): () => void {
  const error = el("op-error");
  const fail = (e: unknown) => {
    error.textContent = e instanceof Error ? e.message : String(e);
  };

  const onEvent = (frame: ServerFrame) => {
    if (frame.type === "error") return fail(new Error(`${frame.code}: ${frame.message}`));
    if (frame.type !== "event") return;
    const event = frame as Record<string, unknown>;
    const at = String(event.at ?? new Date().toISOString()).slice(11, 19);
    if (frame.topic === "executions") {
      const row = document.createElement("tr");
      row.append(
        cell(at),
        cell(String(event.kind ?? "")),
        cell(String(event.sessionId ?? "")),
        cell(String(event.execId ?? "")),
        cell(String(event.lang ?? "")),
        cell(String(event.reason ?? "")),
        cell(event.wallMs !== undefined ? String(event.wallMs) : ""),
      );
      const body = el("executions");
      body.prepend(row);
      while (body.childElementCount > MAX_ROWS) body.lastElementChild?.remove();
    } else {
      const item = document.createElement("li");
      item.textContent = `${at} ${String(event.kind ?? "")} ${String(event.sandboxId ?? "")} ${String(event.sessionId ?? "")}`;
      const list = el("pool-events");
      list.prepend(item);
      while (list.childElementCount > MAX_ROWS) list.lastElementChild?.remove();
      void loadPool().catch(fail);
    }
  };

  const loadPool = async () => {
    const health = await api<{ sessions: number; checks: { pool: Record<string, unknown>; sandbox: Record<string, unknown> } }>(key, "GET", "/health/detailed");
    const pool = Object.entries(health.checks.pool).filter(([name]) => name !== "status");
    const figures: [string, unknown][] = [
      ["live sessions", health.sessions],
      ["live sandboxes", health.checks.sandbox.sandboxes],
      ...pool.map(([name, value]): [string, unknown] => [`pool ${name}`, value]),
    ];
    el("pool").replaceChildren(
      ...figures
        .filter(([, v]) => v !== undefined && typeof v !== "object")
        .flatMap(([k, v]) => {
          const dt = document.createElement("dt");
          dt.textContent = k;
          const dd = document.createElement("dd");
          dd.textContent = String(v);
          return [dt, dd];
        }),
    );
  };

  const loadKeys = async () => {
    const keys = await api<KeyRow[]>(key, "GET", "/api/v1/admin/keys");
    el("keys").replaceChildren(
      ...keys.map((k) => {
        const row = document.createElement("tr");
        const actions = document.createElement("td");
        actions.append(
          button(
            k.enabled ? "Disable" : "Enable",
            () => void api(key, "PATCH", `/api/v1/admin/keys/${k.key_hash}`, { enabled: !k.enabled }).then(loadKeys).catch(fail),
          ),
          button("Delete", () => {
            if (confirm(`Delete key ${k.name || k.key_hash.slice(0, 12)}?`))
              void api(key, "DELETE", `/api/v1/admin/keys/${k.key_hash}`).then(loadKeys).catch(fail);
          }),
        );
        row.append(cell(k.name), cell(`${k.key_hash.slice(0, 12)}…`), cell(k.enabled ? "yes" : "no"), cell(String(k.usage.requests)), actions);
        return row;
      }),
    );
  };

  const form = el("key-create") as HTMLFormElement;
  form.onsubmit = (event) => {
    event.preventDefault();
    const name = (el("key-name") as HTMLInputElement).value;
    void api<{ key: string }>(key, "POST", "/api/v1/admin/keys", { name })
      .then((created) => {
        // Shown once: the server keeps only the key's SHA-256.
        const shown = el("key-created");
        shown.hidden = false;
        shown.textContent = `New key (shown once, copy it now): ${created.key}`;
        return loadKeys();
      })
      .catch(fail);
  };

  const stop = subscribeEvents(key, onEvent, (status) => {
    error.textContent = status === "disconnected" ? "events: not authorised (is this the master key?)" : "";
  });
  void loadPool().catch(fail);
  void loadKeys().catch(fail);
  const timer = setInterval(() => void loadPool().catch(fail), 5_000);
  return () => {
    stop();
    clearInterval(timer);
  };
}

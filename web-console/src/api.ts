/** HTTP calls of the console: the API key goes in a header (x-api-key, the default API_KEY_HEADER). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(key: string, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { "x-api-key": key };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  const data = text ? (JSON.parse(text) as unknown) : undefined;
  if (!res.ok) throw new ApiError(res.status, (data as { error?: string } | undefined)?.error ?? `${method} ${path}: ${res.status}`);
  return data as T;
}

/** Multipart upload through XMLHttpRequest: fetch has no upload progress. */
export function uploadFiles(key: string, files: FileList | File[], onProgress: (fraction: number) => void): Promise<UploadResult> {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const file of Array.from(files)) form.append("files", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/upload");
    xhr.setRequestHeader("x-api-key", key);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText) as UploadResult);
      else reject(new ApiError(xhr.status, `upload failed: ${xhr.status} ${xhr.responseText.slice(0, 200)}`));
    };
    xhr.onerror = () => reject(new ApiError(0, "upload failed: network error"));
    xhr.send(form);
  });
}

export interface UploadResult {
  session_id: string;
  files: { fileId: string; filename: string }[];
}

/** Download with the key header, then hand the bytes to the browser as a file. */
export async function downloadFile(key: string, sessionId: string, fileId: string, name: string): Promise<void> {
  const res = await fetch(`/download/${encodeURIComponent(sessionId)}/${encodeURIComponent(fileId)}`, { headers: { "x-api-key": key } });
  if (!res.ok) throw new ApiError(res.status, `download failed: ${res.status}`);
  const url = URL.createObjectURL(await res.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

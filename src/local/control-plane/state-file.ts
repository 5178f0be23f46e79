// `<state>/stack.json`, how a client finds a running stack's control plane: written by the server,
// read by the client (the CLI, drills, the dashboard's drill runs), neither importing the other.

/** The running stack's control plane: where it listens and the token that opens it. */
export interface StackStateFile {
  pid: number;
  /** The runtime's start (shared/process-info.ts): a pid reused since is not taken for the runtime. */
  processStart?: string;
  controlUrl: string;
  /** Bearer token of the control plane (the file is 0600: only the user can read it). */
  token: string;
  /** What makes an instance serve GET /load: the load drills send it (web-service/load-secret.ts). */
  loadSecret?: string;
  listener: string;
  environment: string;
  startedAt: string;
}

export const stateFileName = "stack.json";

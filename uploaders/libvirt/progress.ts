// Progress of a running `virsh vol-upload`, which prints none: read from Linux /proc of the virsh
// process (our own child). The offset of its open file descriptor on the image is how far the
// upload has read (data sent plus holes skipped); its write counter (`wchar`) is the bytes it
// handed to the ssh transport, i.e. what went over the wire before SSH framing.
// Where /proc is not available the upload still works; progress is then reported at start and end.

import { readFile, readdir, readlink } from 'node:fs/promises';

export interface UploadSample {
  /** File offset of virsh on the image; undefined when the file is not (or no longer) open. */
  position: number | undefined;
  /** Bytes virsh wrote (to the ssh transport, plus a few lines of output). */
  written: number | undefined;
}

export class VirshProbe {
  private fd: string | undefined;
  private base = 0;

  constructor(
    private readonly pid: number,
    /** The image path as the kernel shows it (realpath). */
    private readonly file: string,
  ) {}

  /** Counts written bytes from now on (virsh's counter covers its whole life). */
  async mark(): Promise<void> {
    this.base = (await this.written()) ?? 0;
  }

  async sample(): Promise<UploadSample> {
    const written = await this.written();
    return { position: await this.position(), written: written === undefined ? undefined : written - this.base };
  }

  private async position(): Promise<number | undefined> {
    try {
      if (this.fd === undefined) {
        for (const fd of await readdir(`/proc/${this.pid}/fd`)) {
          const target = await readlink(`/proc/${this.pid}/fd/${fd}`).catch(() => '');
          if (target === this.file) {
            this.fd = fd;
            break;
          }
        }
        if (this.fd === undefined) return undefined;
      }
      const info = await readFile(`/proc/${this.pid}/fdinfo/${this.fd}`, 'utf8');
      const m = /^pos:\s+(\d+)/m.exec(info);
      return m ? Number(m[1]) : undefined;
    } catch {
      this.fd = undefined; // closed, or the process is gone
      return undefined;
    }
  }

  private async written(): Promise<number | undefined> {
    try {
      const io = await readFile(`/proc/${this.pid}/io`, 'utf8');
      const m = /^wchar:\s+(\d+)/m.exec(io);
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  }
}

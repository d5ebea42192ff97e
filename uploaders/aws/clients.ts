// SDK clients for one AWS target. Credentials come from the SDK's default provider chain
// (environment, shared config/credentials files and profiles, SSO, process, container or instance
// roles), never from the inventory; the region is the target's; `endpoint` (tests, private
// endpoints) overrides where requests go.

import { EBSClient } from '@aws-sdk/client-ebs';
import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { registerSecrets } from '../../src/core/redact.ts';

export interface ClientSettings {
  /** Overrides the default credential chain (for embedding; the CLI leaves it unset). */
  credentials?: EC2ClientConfig['credentials'];
  /** EC2 and EBS endpoint override (the target's `endpoint`). */
  endpoint?: string;
  /**
   * S3 endpoint override; defaults to `endpoint`. Without either, the SDK's own resolution
   * applies, including AWS_ENDPOINT_URL_S3.
   */
  s3Endpoint?: string;
  /** Attempts per request, including the first; the SDK's standard retry strategy backs off. */
  maxAttempts: number;
  /** Sockets per client: at least the number of blocks in flight. */
  maxSockets: number;
  /** Per-request socket timeout (ms) so a stalled connection fails and is retried. */
  requestTimeoutMs: number;
}

export class AwsClients {
  private readonly ec2ByRegion = new Map<string, EC2Client>();
  private ebsClient: EBSClient | undefined;
  private s3Client: S3Client | undefined;

  constructor(
    readonly region: string,
    private readonly settings: ClientSettings,
  ) {}

  private common(region: string) {
    return {
      region,
      ...(this.settings.credentials ? { credentials: this.settings.credentials } : {}),
      maxAttempts: this.settings.maxAttempts,
      retryMode: 'standard',
      requestHandler: {
        requestTimeout: this.settings.requestTimeoutMs,
        httpAgent: { keepAlive: true, maxSockets: this.settings.maxSockets },
        httpsAgent: { keepAlive: true, maxSockets: this.settings.maxSockets },
      },
    };
  }

  ec2(region = this.region): EC2Client {
    let c = this.ec2ByRegion.get(region);
    if (!c) {
      c = new EC2Client({ ...this.common(region), ...(this.settings.endpoint ? { endpoint: this.settings.endpoint } : {}) });
      this.ec2ByRegion.set(region, c);
    }
    return c;
  }

  ebs(): EBSClient {
    this.ebsClient ??= new EBSClient({
      ...this.common(this.region),
      ...(this.settings.endpoint ? { endpoint: this.settings.endpoint } : {}),
    });
    return this.ebsClient;
  }

  s3(): S3Client {
    const endpoint = this.settings.s3Endpoint ?? this.settings.endpoint;
    this.s3Client ??= new S3Client({
      ...this.common(this.region),
      ...(endpoint
        ? {
            endpoint,
            // Custom endpoints (S3-compatible servers, loopback) have no bucket DNS names.
            forcePathStyle: true,
            // The SDK's default flexible checksums send streamed bodies aws-chunked with trailing
            // CRC32s, which S3-compatible servers often store verbatim or reject; AWS's own S3
            // keeps the default.
            requestChecksumCalculation: 'WHEN_REQUIRED' as const,
            responseChecksumValidation: 'WHEN_REQUIRED' as const,
          }
        : {}),
    });
    return this.s3Client;
  }

  /** Resolves credentials once, so a missing or broken setup fails before anything is created. */
  async resolveCredentials(): Promise<void> {
    // Whichever provider gave them (a credentials file, SSO, an assumed role), they are secrets.
    const c = await this.ec2().config.credentials();
    registerSecrets([c.accessKeyId, c.secretAccessKey, c.sessionToken]);
  }

  destroy(): void {
    for (const c of this.ec2ByRegion.values()) c.destroy();
    this.ebsClient?.destroy();
    this.s3Client?.destroy();
  }
}

// EC2 Query API (form-encoded POST, XML answers) for snapshots, images and snapshot imports.

import { open, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { QueryParams } from './query.ts';
import {
  ACCOUNT_ID,
  AwsFault,
  GIB,
  applyTags,
  newId,
  tagList,
  type BlockDeviceMapping,
  type FakeState,
  type Image,
  type ImportTask,
  type Region,
  type Snapshot,
  type Tags,
} from './state.ts';
import type { XmlValue } from './xml.ts';

type Members = Record<string, XmlValue>;
type Handler = (region: Region, p: QueryParams) => Members | Promise<Members>;

const ARCHITECTURES = ['i386', 'x86_64', 'arm64', 'x86_64_mac', 'arm64_mac'];
const BOOT_MODES = ['legacy-bios', 'uefi', 'uefi-preferred'];
const VOLUME_TYPES = ['standard', 'io1', 'io2', 'gp2', 'sc1', 'st1', 'gp3'];
const IMAGE_ATTRIBUTES = [
  'description', 'kernel', 'ramdisk', 'launchPermission', 'productCodes', 'blockDeviceMapping', 'sriovNetSupport',
  'bootMode', 'tpmSupport', 'uefiData', 'lastLaunchedTime', 'imdsSupport', 'deregistrationProtection',
];
const AMI_NAME = /^[A-Za-z0-9()[\] ./\-'@_]{3,128}$/;
const ROOT_DEVICE = /^\/dev\/(sd[a-z][0-9]*|xvd[a-z][0-9]*|nvme[0-9]+n[0-9]+)$/;
// How far ahead EnableImageDeprecation may go.
const MAX_DEPRECATION_MS = 10 * 365.25 * 86_400_000;

function missing(name: string): AwsFault {
  return new AwsFault('MissingParameter', `The request must contain the parameter ${name}`);
}
function invalid(name: string, value: string): AwsFault {
  return new AwsFault('InvalidParameterValue', `Value (${value}) for parameter ${name} is invalid.`);
}
function required(p: QueryParams, name: string): string {
  const v = p.get(name);
  if (v === undefined || v === '') throw missing(name);
  return v;
}

const ZERO = Buffer.alloc(1 << 20);
function isZero(b: Buffer): boolean {
  for (let o = 0; o < b.length; o += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - o);
    if (!b.subarray(o, o + n).equals(ZERO.subarray(0, n))) return false;
  }
  return true;
}

function wildcard(pattern: string): RegExp {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

interface Filter {
  name: string;
  values: string[];
}
function filters(p: QueryParams, prefix: string): Filter[] {
  return p.members(prefix).map((m) => ({ name: required(p, `${m}.Name`), values: p.list(`${m}.Value`) }));
}
function tagFilterMatch(tags: Tags, f: Filter): boolean | undefined {
  if (f.name.startsWith('tag:')) {
    const v = tags.get(f.name.slice(4));
    return v !== undefined && f.values.some((x) => wildcard(x).test(v));
  }
  if (f.name === 'tag-key') return f.values.some((x) => [...tags.keys()].some((k) => wildcard(x).test(k)));
  return undefined;
}

/** TagSpecification.N for one allowed resource type; returns the tags per type. */
function tagSpecifications(p: QueryParams, allowed: string[]): Map<string, Tags> {
  const out = new Map<string, Tags>();
  for (const m of p.members('TagSpecification')) {
    const type = required(p, `${m}.ResourceType`);
    if (!allowed.includes(type)) {
      throw new AwsFault('InvalidParameterValue', `'${type}' is not a valid taggable resource type for this operation.`);
    }
    const tags = out.get(type) ?? new Map<string, string>();
    applyTags(tags, p.members(`${m}.Tag`).map((t) => ({ key: p.get(`${t}.Key`), value: p.get(`${t}.Value`) })));
    out.set(type, tags);
  }
  return out;
}

function imageXml(img: Image): XmlValue {
  return {
    imageId: img.id,
    imageLocation: `${ACCOUNT_ID}/${img.name}`,
    imageState: img.state,
    imageOwnerId: ACCOUNT_ID,
    creationDate: img.creationDate,
    isPublic: false,
    architecture: img.architecture,
    imageType: 'machine',
    name: img.name,
    description: img.description,
    rootDeviceType: 'ebs',
    rootDeviceName: img.rootDeviceName,
    blockDeviceMapping: img.blockDeviceMappings.map((b) => ({
      deviceName: b.deviceName,
      ebs: {
        snapshotId: b.snapshotId,
        volumeSize: b.volumeSize,
        deleteOnTermination: b.deleteOnTermination,
        volumeType: b.volumeType,
        encrypted: b.encrypted,
      },
    })),
    virtualizationType: img.virtualizationType,
    tagSet: img.tags.size ? tagList(img.tags) : undefined,
    hypervisor: 'xen',
    enaSupport: img.enaSupport,
    sriovNetSupport: img.sriovNetSupport,
    bootMode: img.bootMode,
    imdsSupport: img.imdsSupport,
    deprecationTime: img.deprecationTime?.toISOString(),
    lastLaunchedTime: img.lastLaunchedTime?.toISOString(),
    sourceImageId: img.sourceImageId,
    sourceImageRegion: img.sourceRegion,
  };
}

function snapshotXml(s: Snapshot): XmlValue {
  return {
    snapshotId: s.id,
    volumeId: 'vol-ffffffff',
    status: s.state,
    startTime: s.startTime,
    progress: s.state === 'completed' ? '100%' : '0%',
    ownerId: ACCOUNT_ID,
    volumeSize: s.volumeSize,
    description: s.description,
    encrypted: false,
    storageTier: 'standard',
    tagSet: s.tags.size ? tagList(s.tags) : undefined,
  };
}

function taskXml(t: ImportTask): XmlValue {
  return {
    importTaskId: t.id,
    description: t.description,
    snapshotTaskDetail: {
      diskImageSize: t.diskImageSize,
      format: t.format,
      progress: t.progress,
      snapshotId: t.snapshotId,
      status: t.status,
      statusMessage: t.statusMessage,
      userBucket: { s3Bucket: t.bucket, s3Key: t.key },
    },
    tagSet: t.tags.size ? tagList(t.tags) : undefined,
  };
}

export class Ec2 {
  readonly handlers: Record<string, Handler>;
  private readonly s3: S3Client | undefined;

  constructor(
    private readonly state: FakeState,
    private readonly dataDir: string,
    s3Config: S3ClientConfig | undefined,
  ) {
    this.s3 = s3Config ? new S3Client(s3Config) : undefined;
    this.handlers = {
      DescribeImages: (r, p) => this.describeImages(r, p),
      DescribeSnapshots: (r, p) => this.describeSnapshots(r, p),
      DeleteSnapshot: (r, p) => this.deleteSnapshot(r, p),
      CreateTags: (r, p) => this.createTags(r, p),
      DeleteTags: (r, p) => this.deleteTags(r, p),
      RegisterImage: (r, p) => this.registerImage(r, p),
      DeregisterImage: (r, p) => this.deregisterImage(r, p),
      CopyImage: (r, p) => this.copyImage(r, p),
      ModifyImageAttribute: (r, p) => this.modifyImageAttribute(r, p),
      DescribeImageAttribute: (r, p) => this.describeImageAttribute(r, p),
      EnableImageDeprecation: (r, p) => this.enableImageDeprecation(r, p),
      DisableImageDeprecation: (r, p) => this.disableImageDeprecation(r, p),
      ImportSnapshot: (r, p) => this.importSnapshot(r, p),
      DescribeImportSnapshotTasks: (r, p) => this.describeImportSnapshotTasks(r, p),
      CancelImportTask: (r, p) => this.cancelImportTask(r, p),
    };
  }

  close(): void {
    this.s3?.destroy();
  }

  private image(r: Region, id: string): Image {
    if (!/^ami-[0-9a-f]{8,17}$/.test(id)) throw new AwsFault('InvalidAMIID.Malformed', `Invalid id: "${id}" (expecting "ami-...")`);
    const img = r.images.get(id);
    if (!img) throw new AwsFault('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
    return img;
  }

  private snapshot(r: Region, id: string): Snapshot {
    if (!/^snap-[0-9a-f]{8,17}$/.test(id)) throw new AwsFault('InvalidSnapshotID.Malformed', `Invalid id: "${id}" (expecting "snap-...")`);
    const s = r.snapshots.get(id);
    if (!s) throw new AwsFault('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
    return s;
  }

  private maxResults(p: QueryParams, min: number, max: number): void {
    const raw = p.get('MaxResults');
    if (raw === undefined) return;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new AwsFault('InvalidParameterValue', `Value (${raw}) for parameter maxResults is invalid. Expecting a value between ${min} and ${max}.`);
    }
  }

  private describeImages(r: Region, p: QueryParams): Members {
    this.maxResults(p, 5, 1000);
    if (p.has('MaxResults') && p.list('ImageId').length) {
      throw new AwsFault('InvalidParameterCombination', 'The parameter imageIdsSet cannot be used with the parameter maxResults');
    }
    const ids = p.list('ImageId');
    const owners = p.list('Owner');
    let images = [...r.images.values()];
    if (ids.length) {
      for (const id of ids) this.image(r, id);
      images = images.filter((i) => ids.includes(i.id));
    }
    if (owners.length && !owners.some((o) => o === 'self' || o === ACCOUNT_ID)) images = [];
    for (const f of filters(p, 'Filter')) {
      images = images.filter((img) => {
        const byTag = tagFilterMatch(img.tags, f);
        if (byTag !== undefined) return byTag;
        const field: Record<string, string | undefined> = {
          name: img.name,
          'image-id': img.id,
          state: img.state,
          architecture: img.architecture,
          'owner-id': ACCOUNT_ID,
          description: img.description,
          'block-device-mapping.snapshot-id': img.blockDeviceMappings[0]?.snapshotId,
        };
        if (!(f.name in field)) throw new AwsFault('InvalidParameterValue', `The filter '${f.name}' is invalid`);
        const v = field[f.name];
        return v !== undefined && f.values.some((x) => wildcard(x).test(v));
      });
    }
    return { imagesSet: images.map(imageXml) };
  }

  private describeSnapshots(r: Region, p: QueryParams): Members {
    this.maxResults(p, 5, 1000);
    const ids = p.list('SnapshotId');
    const owners = p.list('Owner');
    let snaps = [...r.snapshots.values()];
    if (ids.length) {
      for (const id of ids) this.snapshot(r, id);
      snaps = snaps.filter((s) => ids.includes(s.id));
    }
    if (owners.length && !owners.some((o) => o === 'self' || o === ACCOUNT_ID)) snaps = [];
    for (const f of filters(p, 'Filter')) {
      snaps = snaps.filter((s) => {
        const byTag = tagFilterMatch(s.tags, f);
        if (byTag !== undefined) return byTag;
        const field: Record<string, string> = { status: s.state, 'snapshot-id': s.id, 'owner-id': ACCOUNT_ID, description: s.description };
        if (!(f.name in field)) throw new AwsFault('InvalidParameterValue', `The filter '${f.name}' is invalid`);
        return f.values.some((x) => wildcard(x).test(field[f.name]!));
      });
    }
    return { snapshotSet: snaps.map(snapshotXml) };
  }

  /** Removes a snapshot's data file once no snapshot (copies share it) refers to it. */
  private async dropData(dataPath: string): Promise<void> {
    for (const r of this.state.regions.values()) {
      for (const s of r.snapshots.values()) if (s.dataPath === dataPath) return;
    }
    await rm(dataPath, { force: true });
  }

  private async deleteSnapshot(r: Region, p: QueryParams): Promise<Members> {
    const s = this.snapshot(r, required(p, 'SnapshotId'));
    for (const img of r.images.values()) {
      if (img.blockDeviceMappings.some((b) => b.snapshotId === s.id)) {
        throw new AwsFault('InvalidSnapshot.InUse', `The snapshot ${s.id} is currently in use by ${img.id}`);
      }
    }
    r.snapshots.delete(s.id);
    await this.dropData(s.dataPath);
    return { return: true };
  }

  private createTags(r: Region, p: QueryParams): Members {
    const ids = p.list('ResourceId');
    if (!ids.length) throw missing('ResourceId');
    const tags = p.members('Tag').map((t) => ({ key: p.get(`${t}.Key`), value: p.get(`${t}.Value`) }));
    if (!tags.length) throw missing('Tag');
    const targets = ids.map((id) => {
      if (id.startsWith('ami-')) return this.image(r, id).tags;
      if (id.startsWith('snap-')) return this.snapshot(r, id).tags;
      throw new AwsFault('InvalidID', `The ID '${id}' is not valid`);
    });
    for (const t of targets) {
      const trial = new Map(t);
      applyTags(trial, tags); // all-or-nothing: validate every target before changing any
    }
    for (const t of targets) applyTags(t, tags);
    return { return: true };
  }

  /** DeleteTags: a Tag.N.Key alone removes the key whatever its value; with a Value, only that value. */
  private deleteTags(r: Region, p: QueryParams): Members {
    const ids = p.list('ResourceId');
    if (!ids.length) throw missing('ResourceId');
    const tags = p.members('Tag').map((t) => ({ key: p.get(`${t}.Key`), value: p.get(`${t}.Value`) }));
    const targets = ids.map((id) => {
      if (id.startsWith('ami-')) return this.image(r, id).tags;
      if (id.startsWith('snap-')) return this.snapshot(r, id).tags;
      throw new AwsFault('InvalidID', `The ID '${id}' is not valid`);
    });
    for (const t of tags) {
      if (t.key === undefined || t.key === '') throw new AwsFault('InvalidParameterValue', 'Tag key cannot be empty');
      if (t.key.toLowerCase().startsWith('aws:')) throw new AwsFault('InvalidParameterValue', "Tag keys starting with 'aws:' are reserved for internal use");
    }
    for (const target of targets) {
      if (!tags.length) target.clear(); // no Tag.N: every user tag goes
      for (const t of tags) if (t.value === undefined || target.get(t.key!) === t.value) target.delete(t.key!);
    }
    return { return: true };
  }

  private checkName(r: Region, name: string | undefined): string {
    if (name === undefined || name === '') throw missing('name');
    if (!AMI_NAME.test(name)) {
      throw new AwsFault(
        'InvalidAMIName.Malformed',
        "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/', '_', '[', ']', ' ', ''' and '@'",
      );
    }
    for (const img of r.images.values()) {
      if (img.name === name) throw new AwsFault('InvalidAMIName.Duplicate', `AMI name ${name} is already in use by AMI ${img.id}`);
    }
    return name;
  }

  private registerImage(r: Region, p: QueryParams): Members {
    if (p.has('ImageLocation')) throw new AwsFault('InvalidParameterValue', 'the fake registers EBS-backed images only (no ImageLocation)');
    const name = this.checkName(r, p.get('Name'));
    const architecture = p.get('Architecture');
    // AWS defaults a missing Architecture to i386, which is never what an uploader means: the fake
    // insists on it so a forgotten argument fails here instead of producing an unbootable AMI.
    if (architecture === undefined) throw missing('architecture');
    if (!ARCHITECTURES.includes(architecture)) throw invalid('architecture', architecture);
    const virtualizationType = p.get('VirtualizationType') ?? 'paravirtual';
    if (!['hvm', 'paravirtual'].includes(virtualizationType)) throw invalid('virtualizationType', virtualizationType);
    if (architecture === 'arm64' && virtualizationType !== 'hvm') {
      throw new AwsFault('InvalidParameterCombination', 'arm64 images must use hvm virtualization');
    }
    const bootMode = p.get('BootMode');
    if (bootMode !== undefined && !BOOT_MODES.includes(bootMode)) throw invalid('BootMode', bootMode);
    if (architecture === 'arm64' && bootMode === 'legacy-bios') {
      throw new AwsFault('InvalidParameterCombination', 'The arm64 architecture supports the uefi boot mode only');
    }
    const imdsSupport = p.get('ImdsSupport');
    if (imdsSupport !== undefined && imdsSupport !== 'v2.0') throw invalid('ImdsSupport', imdsSupport);
    const rootDeviceName = p.get('RootDeviceName');
    if (rootDeviceName === undefined) throw missing('rootDeviceName');
    if (!ROOT_DEVICE.test(rootDeviceName)) throw invalid('rootDeviceName', rootDeviceName);
    const mappings: BlockDeviceMapping[] = [];
    for (const m of p.members('BlockDeviceMapping')) {
      const deviceName = p.get(`${m}.DeviceName`);
      if (!deviceName) throw missing('BlockDeviceMapping.DeviceName');
      if (mappings.some((b) => b.deviceName === deviceName)) {
        throw new AwsFault('InvalidBlockDeviceMapping', `The device '${deviceName}' is mapped more than once`);
      }
      const snapshotId = p.get(`${m}.Ebs.SnapshotId`);
      let volumeSize = p.get(`${m}.Ebs.VolumeSize`) === undefined ? undefined : Number(p.get(`${m}.Ebs.VolumeSize`));
      if (snapshotId !== undefined) {
        const snap = this.snapshot(r, snapshotId);
        if (snap.state !== 'completed') throw new AwsFault('IncorrectState', `Snapshot is in invalid state - ${snap.state}`);
        if (volumeSize !== undefined && volumeSize < snap.volumeSize) {
          throw new AwsFault(
            'InvalidBlockDeviceMapping',
            `Volume of size ${volumeSize}GB is smaller than snapshot '${snapshotId}', expect size >= ${snap.volumeSize}GB`,
          );
        }
        volumeSize ??= snap.volumeSize;
      }
      const volumeType = p.get(`${m}.Ebs.VolumeType`) ?? 'gp2';
      if (!VOLUME_TYPES.includes(volumeType)) throw invalid('volumeType', volumeType);
      if (p.bool(`${m}.Ebs.Encrypted`)) throw new AwsFault('InvalidParameterValue', 'the fake does not implement encrypted volumes');
      mappings.push({
        deviceName,
        snapshotId,
        volumeSize,
        volumeType,
        deleteOnTermination: p.bool(`${m}.Ebs.DeleteOnTermination`) ?? true,
        encrypted: false,
      });
    }
    const root = mappings.find((b) => b.deviceName === rootDeviceName);
    if (!root) throw new AwsFault('InvalidBlockDeviceMapping', `The root device name '${rootDeviceName}' has no block device mapping`);
    if (!root.snapshotId) throw new AwsFault('InvalidBlockDeviceMapping', `The root device '${rootDeviceName}' must map a snapshot`);
    const specs = tagSpecifications(p, ['image']);
    const img: Image = {
      id: newId('ami'),
      region: r.name,
      name,
      description: p.get('Description'),
      architecture,
      rootDeviceName,
      virtualizationType,
      bootMode,
      enaSupport: p.bool('EnaSupport') ?? false,
      imdsSupport,
      sriovNetSupport: p.get('SriovNetSupport'),
      blockDeviceMappings: mappings,
      state: 'pending',
      availableAt: Date.now() + this.state.timing.imageAvailableMs,
      creationDate: new Date(),
      tags: specs.get('image') ?? new Map(),
      launchPermissions: new Set(),
    };
    r.images.set(img.id, img);
    return { imageId: img.id };
  }

  private async deregisterImage(r: Region, p: QueryParams): Promise<Members> {
    const img = this.image(r, required(p, 'ImageId'));
    r.images.delete(img.id);
    const results: XmlValue[] = [];
    if (p.bool('DeleteAssociatedSnapshots')) {
      for (const b of img.blockDeviceMappings) {
        if (!b.snapshotId) continue;
        const inUse = [...r.images.values()].some((i) => i.blockDeviceMappings.some((x) => x.snapshotId === b.snapshotId));
        if (!inUse) {
          const snap = r.snapshots.get(b.snapshotId);
          r.snapshots.delete(b.snapshotId);
          if (snap) await this.dropData(snap.dataPath);
        }
        results.push({ snapshotId: b.snapshotId, returnCode: inUse ? 'error' : 'success' });
      }
    }
    return { return: true, deleteSnapshotResultSet: results.length ? results : undefined };
  }

  private copyImage(r: Region, p: QueryParams): Members {
    const sourceRegionName = required(p, 'SourceRegion');
    const sourceId = required(p, 'SourceImageId');
    const token = p.get('ClientToken');
    if (token !== undefined && r.copyTokens.has(token)) return { imageId: r.copyTokens.get(token)! };
    const sourceRegion = this.state.region(sourceRegionName);
    if (!sourceRegion) throw new AwsFault('InvalidParameterValue', `Invalid source region: ${sourceRegionName}`);
    const src = this.image(sourceRegion, sourceId);
    if (src.state !== 'available') throw new AwsFault('IncorrectState', `Image '${src.id}' is not in a valid state: ${src.state}`);
    const name = this.checkName(r, p.get('Name'));
    if (p.bool('Encrypted')) throw new AwsFault('InvalidParameterValue', 'the fake does not implement encrypted copies');
    const specs = tagSpecifications(p, ['image', 'snapshot']);
    const tags = new Map<string, string>(p.bool('CopyImageTags') ? src.tags : []);
    applyTags(tags, tagList(specs.get('image') ?? new Map()));
    const mappings = src.blockDeviceMappings.map((b) => {
      if (!b.snapshotId) return { ...b };
      const from = sourceRegion.snapshots.get(b.snapshotId);
      if (!from) throw new AwsFault('InvalidSnapshot.NotFound', `The snapshot '${b.snapshotId}' does not exist.`);
      const copy: Snapshot = {
        ...from,
        id: newId('snap'),
        region: r.name,
        state: 'completed',
        description: `Copied for DestinationAmi from SourceAmi ${src.id} from SourceSnapshot ${from.id}`,
        tags: new Map(specs.get('snapshot') ?? []),
        startTime: new Date(),
        origin: 'copy',
        blockDigests: new Map(),
        clientToken: undefined,
        startRequestKey: undefined,
        completeAt: undefined,
        bytesReceived: 0,
        putRequests: 0,
      };
      r.snapshots.set(copy.id, copy);
      return { ...b, snapshotId: copy.id };
    });
    const img: Image = {
      ...src,
      id: newId('ami'),
      region: r.name,
      name,
      description: p.get('Description') ?? src.description,
      blockDeviceMappings: mappings,
      state: 'pending',
      availableAt: Date.now() + this.state.timing.imageAvailableMs,
      creationDate: new Date(),
      tags,
      launchPermissions: new Set(),
      deprecationTime: undefined,
      sourceImageId: src.id,
      sourceRegion: sourceRegion.name,
    };
    r.images.set(img.id, img);
    if (token !== undefined) r.copyTokens.set(token, img.id);
    return { imageId: img.id };
  }

  private modifyImageAttribute(r: Region, p: QueryParams): Members {
    const img = this.image(r, required(p, 'ImageId'));
    const add: string[] = [];
    const remove: string[] = [];
    let touched = false;
    for (const [op, into] of [['Add', add], ['Remove', remove]] as const) {
      for (const m of p.members(`LaunchPermission.${op}`)) {
        touched = true;
        const user = p.get(`${m}.UserId`);
        const group = p.get(`${m}.Group`);
        if (group !== undefined) {
          if (group !== 'all') throw new AwsFault('InvalidAMIAttributeItemValue', `Invalid attribute item value "${group}" for group item type.`);
          throw new AwsFault('InvalidParameterValue', 'the fake does not implement public images');
        }
        if (user === undefined) throw missing('LaunchPermission.UserId');
        into.push(user);
      }
    }
    const attribute = p.get('Attribute');
    if (attribute !== undefined) {
      touched = true;
      if (attribute === 'launchPermission') {
        const op = p.get('OperationType');
        if (op !== 'add' && op !== 'remove') throw missing('OperationType');
        (op === 'add' ? add : remove).push(...p.list('UserId'));
        if (p.list('UserGroup').length) throw new AwsFault('InvalidParameterValue', 'the fake does not implement public images');
      } else if (attribute === 'description') {
        img.description = required(p, 'Value');
      } else if (attribute === 'imdsSupport') {
        const v = required(p, 'Value');
        if (v !== 'v2.0') throw invalid('ImdsSupport', v);
        img.imdsSupport = v;
      } else {
        throw new AwsFault('InvalidParameterValue', `The attribute '${attribute}' cannot be modified by the fake`);
      }
    }
    if (p.has('Description.Value')) {
      touched = true;
      img.description = p.get('Description.Value');
    }
    if (p.has('ImdsSupport.Value')) {
      touched = true;
      const v = p.get('ImdsSupport.Value')!;
      if (v !== 'v2.0') throw invalid('ImdsSupport', v);
      img.imdsSupport = v;
    }
    if (!touched) throw missing('Attribute');
    for (const user of [...add, ...remove]) {
      if (!/^\d{12}$/.test(user)) throw new AwsFault('InvalidAMIAttributeItemValue', `Invalid attribute item value "${user}" for userId item type.`);
    }
    for (const user of add) img.launchPermissions.add(user);
    for (const user of remove) img.launchPermissions.delete(user);
    return { return: true };
  }

  private describeImageAttribute(r: Region, p: QueryParams): Members {
    const attribute = required(p, 'Attribute');
    if (!IMAGE_ATTRIBUTES.includes(attribute)) throw invalid('Attribute', attribute);
    const img = this.image(r, required(p, 'ImageId'));
    const value = (v: string | undefined): XmlValue => (v === undefined ? {} : { value: v });
    const out: Members = { imageId: img.id };
    switch (attribute) {
      case 'launchPermission':
        out.launchPermission = [...img.launchPermissions].map((userId) => ({ userId }));
        break;
      case 'lastLaunchedTime':
        out.lastLaunchedTime = value(img.lastLaunchedTime?.toISOString());
        break;
      case 'description':
        out.description = value(img.description);
        break;
      case 'bootMode':
        out.bootMode = value(img.bootMode);
        break;
      case 'imdsSupport':
        out.imdsSupport = value(img.imdsSupport);
        break;
      case 'blockDeviceMapping':
        out.blockDeviceMapping = (imageXml(img) as Record<string, XmlValue>).blockDeviceMapping;
        break;
      case 'sriovNetSupport':
        out.sriovNetSupport = value(img.sriovNetSupport);
        break;
      case 'productCodes':
        out.productCodes = [];
        break;
      default:
        out[attribute] = {};
    }
    return out;
  }

  private enableImageDeprecation(r: Region, p: QueryParams): Members {
    const img = this.image(r, required(p, 'ImageId'));
    const raw = required(p, 'DeprecateAt');
    const at = new Date(raw);
    if (Number.isNaN(at.getTime())) throw invalid('DeprecateAt', raw);
    // EC2 rounds seconds to the nearest minute.
    const rounded = new Date(Math.round(at.getTime() / 60_000) * 60_000);
    const now = Date.now();
    if (rounded.getTime() <= now) throw new AwsFault('InvalidParameterValue', `The deprecation time ${raw} must be in the future.`);
    if (rounded.getTime() > now + MAX_DEPRECATION_MS) {
      throw new AwsFault('InvalidParameterValue', `The deprecation time ${raw} must be at most 10 years from now.`);
    }
    img.deprecationTime = rounded;
    return { return: true };
  }

  private disableImageDeprecation(r: Region, p: QueryParams): Members {
    const img = this.image(r, required(p, 'ImageId'));
    img.deprecationTime = undefined;
    return { return: true };
  }

  private importSnapshot(r: Region, p: QueryParams): Members {
    if (p.has('DiskContainer.Url')) throw new AwsFault('InvalidParameterValue', 'the fake imports from UserBucket only, not Url');
    const bucket = p.get('DiskContainer.UserBucket.S3Bucket');
    const key = p.get('DiskContainer.UserBucket.S3Key');
    if (!bucket) throw missing('DiskContainer.UserBucket.S3Bucket');
    if (!key) throw missing('DiskContainer.UserBucket.S3Key');
    const format = p.get('DiskContainer.Format');
    if (format === undefined) throw missing('DiskContainer.Format');
    if (!['VHD', 'VMDK', 'RAW'].includes(format.toUpperCase())) throw invalid('DiskContainer.Format', format);
    if (format.toUpperCase() !== 'RAW') throw new AwsFault('InvalidParameterValue', 'the fake imports RAW disks only');
    if (p.bool('Encrypted')) throw new AwsFault('InvalidParameterValue', 'the fake does not implement encrypted imports');
    const specs = tagSpecifications(p, ['import-snapshot-task']);
    const task: ImportTask = {
      id: newId('import-snap'),
      region: r.name,
      description: p.get('Description') ?? '',
      bucket,
      key,
      format: 'RAW',
      status: 'active',
      statusMessage: 'pending',
      progress: '0',
      polls: 0,
      tags: specs.get('import-snapshot-task') ?? new Map(),
    };
    r.importTasks.set(task.id, task);
    // The import service reads the object asynchronously; the fake streams it into the snapshot's
    // data file (never into memory) and sizes the snapshot from the bytes read.
    void this.readImportObject(task);
    return taskXml(task) as Members;
  }

  /** Reads a task's object into its data file (also for tasks restored after a restart). */
  async readImportObject(task: ImportTask): Promise<void> {
    const dataPath = join(this.dataDir, `${task.id}.img`);
    if (!this.s3) {
      task.read = { ok: false, message: 'ClientError: the fake has no S3 server configured' };
      return;
    }
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: task.bucket, Key: task.key }));
      const fh = await open(dataPath, 'w');
      let bytes = 0;
      try {
        for await (const chunk of out.Body as AsyncIterable<Uint8Array>) {
          // Zero runs are left as holes so imported snapshots stay sparse on disk.
          if (!isZero(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
            await fh.write(chunk, 0, chunk.byteLength, bytes);
          }
          bytes += chunk.byteLength;
        }
      } finally {
        await fh.close();
      }
      if (bytes === 0) {
        task.read = { ok: false, message: 'ClientError: Disk validation failed [Unsupported disk image size: 0 bytes]' };
        return;
      }
      await truncate(dataPath, Math.ceil(bytes / GIB) * GIB);
      task.read = { ok: true, bytes };
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      task.read = {
        ok: false,
        message: `ClientError: Disk validation failed [We do not have access to the given resource. Reason ${status ?? ''} ${(err as Error).name}]`,
      };
    }
  }

  /** Moves a task one poll further: active/pending -> validating -> converting -> completed. */
  private advance(r: Region, task: ImportTask): void {
    if (task.status !== 'active') return;
    task.polls++;
    if (task.read && !task.read.ok && task.polls >= 2) {
      task.status = 'deleted';
      task.statusMessage = task.read.message;
      task.progress = undefined;
      return;
    }
    const stages = this.state.timing.importPolls;
    if (task.polls < stages || !task.read) {
      task.statusMessage = task.polls <= 1 ? 'validating' : 'converting';
      task.progress = String(Math.min(90, Math.round((task.polls / stages) * 100)));
      return;
    }
    if (!task.read.ok) return;
    const size = Math.ceil(task.read.bytes / GIB);
    const snap: Snapshot = {
      id: newId('snap'),
      region: r.name,
      state: 'completed',
      volumeSize: size,
      description: `Created by AWS-VMImport service for ${task.id}`,
      tags: new Map(),
      startTime: new Date(),
      origin: 'import',
      dataPath: join(this.dataDir, `${task.id}.img`),
      blockDigests: new Map(),
      timeoutMinutes: 60,
      bytesReceived: 0,
      putRequests: 0,
    };
    r.snapshots.set(snap.id, snap);
    task.status = 'completed';
    task.statusMessage = undefined;
    task.progress = undefined;
    task.snapshotId = snap.id;
    task.diskImageSize = task.read.bytes;
  }

  private describeImportSnapshotTasks(r: Region, p: QueryParams): Members {
    const ids = p.list('ImportTaskId');
    let tasks = [...r.importTasks.values()];
    if (ids.length) {
      for (const id of ids) {
        if (!r.importTasks.has(id)) throw new AwsFault('InvalidConversionTaskId.Malformed', `The import task ID '${id}' is not valid`);
      }
      tasks = tasks.filter((t) => ids.includes(t.id));
    }
    for (const t of tasks) this.advance(r, t);
    return { importSnapshotTaskSet: tasks.map(taskXml) };
  }

  private cancelImportTask(r: Region, p: QueryParams): Members {
    const id = required(p, 'ImportTaskId');
    const task = r.importTasks.get(id);
    if (!task) throw new AwsFault('InvalidConversionTaskId.Malformed', `The import task ID '${id}' is not valid`);
    if (task.status !== 'active') throw new AwsFault('IncorrectState', `The import task '${id}' is ${task.status} and cannot be cancelled`);
    task.status = 'deleted';
    task.statusMessage = `User cancelled: ${p.get('CancelReason') ?? ''}`.trim();
    return { importTaskId: id, previousState: 'active', state: 'deleting' };
  }
}

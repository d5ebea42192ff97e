import { describe, expect, it } from 'vitest';
import { inspect } from 'node:util';
import {
  cosEndpoint,
  cosHref,
  objectKey,
  vpcServiceUrl,
  DEFAULT_VPC_TEMPLATE,
} from '../../uploaders/ibmcloud/endpoints.ts';
import { cosAuth, readCredentials, secretsOf, type IbmCredentials } from '../../uploaders/ibmcloud/credentials.ts';
import { faultText, hintFor, redact, serviceFault, stepError } from '../../uploaders/ibmcloud/errors.ts';
import { objectMetadata, partSizeFor, S3_MIN_PART } from '../../uploaders/ibmcloud/cos.ts';
import { imageNameProblem, vpcImageName } from '../../uploaders/ibmcloud/names.ts';
import { FarmError } from '../../src/core/errors.ts';

describe('VPC endpoints', () => {
  it('builds the public regional endpoint by default', () => {
    expect(DEFAULT_VPC_TEMPLATE).toBe('https://{region}.iaas.cloud.ibm.com/v1');
    expect(vpcServiceUrl(undefined, 'us-east')).toBe('https://us-east.iaas.cloud.ibm.com/v1');
    expect(vpcServiceUrl(undefined, 'jp-tok', 3)).toBe('https://jp-tok.iaas.cloud.ibm.com/v1');
  });

  it('fills {region} into a template, wherever it is, and adds /v1 to a bare host', () => {
    expect(vpcServiceUrl('http://127.0.0.1:8080/{region}/v1', 'eu-de', 3)).toBe('http://127.0.0.1:8080/eu-de/v1');
    expect(vpcServiceUrl('https://{region}.private.iaas.cloud.ibm.com/', 'us-south', 2)).toBe(
      'https://us-south.private.iaas.cloud.ibm.com/v1',
    );
  });

  it('takes a template without {region} for a single-region target only', () => {
    expect(vpcServiceUrl('https://vpc.example.test/v1', 'us-east', 1)).toBe('https://vpc.example.test/v1');
    expect(() => vpcServiceUrl('https://vpc.example.test/v1', 'us-east', 2)).toThrow(/has no \{region\} but the target has 2 regions/);
  });

  it('refuses region names that are not IBM region names', () => {
    for (const bad of ['US-EAST', 'us_east', 'evil.com/x', '', 'us-east-1']) {
      expect(() => vpcServiceUrl(undefined, bad), bad).toThrow(FarmError);
    }
  });
});

describe('COS', () => {
  it('builds the cos:// href VPC imports from, with the bucket region', () => {
    expect(cosHref('us-east', 'staging', 'img.qcow2')).toBe('cos://us-east/staging/img.qcow2');
    expect(objectKey('farm-20260101-120000-s390x')).toBe('farm-20260101-120000-s390x.qcow2');
  });

  it('uses the public S3 endpoint of the bucket region unless overridden', () => {
    expect(cosEndpoint('eu-de')).toBe('https://s3.eu-de.cloud-object-storage.appdomain.cloud');
    expect(cosEndpoint('us')).toBe('https://s3.us.cloud-object-storage.appdomain.cloud');
    expect(cosEndpoint('eu-de', 'http://127.0.0.1:9000/')).toBe('http://127.0.0.1:9000');
  });

  it('sizes parts to stay under the part limit and above S3 minimum', () => {
    expect(partSizeFor(1024)).toBe(16 * 1024 * 1024);
    expect(partSizeFor(1024, 1)).toBe(S3_MIN_PART);
    const huge = 500 * 1024 ** 3;
    expect(Math.ceil(huge / partSizeFor(huge))).toBeLessThanOrEqual(9000);
  });

  it('turns tags into S3 metadata keys and ASCII values', () => {
    expect(objectMetadata({ 'farm-build-id': 'b1', 'Farm Image_Name': 'naïve' })).toEqual({ 'farm-build-id': 'b1', 'farm-image-name': 'na?ve' });
  });
});

describe('image names', () => {
  it('maps farm names to names VPC accepts', () => {
    expect(vpcImageName('farm-20260101-120000-x86_64')).toBe('farm-20260101-120000-x86-64');
    expect(vpcImageName('Copr.Builder_s390x')).toBe('copr-builder-s390x');
  });

  it('explains why VPC would refuse a name', () => {
    expect(imageNameProblem('farm-20260101-120000-s390x')).toBeUndefined();
    expect(imageNameProblem('1farm')).toMatch(/start with a letter/);
    expect(imageNameProblem('farm-')).toMatch(/end with a letter or digit/);
    expect(imageNameProblem('ibm-farm')).toMatch(/reserves/);
    expect(imageNameProblem(`f${'a'.repeat(63)}`)).toMatch(/at most 63/);
  });
});

describe('credentials', () => {
  it('reads the API key and the COS HMAC keys', () => {
    const r = readCredentials({ IBMCLOUD_API_KEY: 'k1', COS_HMAC_ACCESS_KEY_ID: 'a1', COS_HMAC_SECRET_ACCESS_KEY: 's1' });
    expect(r).toEqual({ ok: true, creds: { apiKey: 'k1', hmac: { accessKeyId: 'a1', secretAccessKey: 's1' } } });
    expect(cosAuth((r as { creds: IbmCredentials }).creds)).toBe('hmac');
  });

  it('falls back to IC_API_KEY; without HMAC keys COS takes the IAM key, never the AWS target’s keys', () => {
    const r = readCredentials({ IC_API_KEY: 'k', AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 's' });
    expect(r).toEqual({ ok: true, creds: { apiKey: 'k' } });
    expect(cosAuth((r as { creds: IbmCredentials }).creds)).toBe('iam');
  });

  it('names every missing variable, never a value', () => {
    const r = readCredentials({ COS_HMAC_SECRET_ACCESS_KEY: 'very-secret-value' });
    expect(r.ok).toBe(false);
    const problems = (r as { problems: string[] }).problems.join('\n');
    expect(problems).toMatch(/IBMCLOUD_API_KEY is not set/);
    expect(problems).toMatch(/COS_HMAC_ACCESS_KEY_ID is not set but COS_HMAC_SECRET_ACCESS_KEY is: COS HMAC keys come in pairs \(or set neither/);
    expect(problems).not.toContain('very-secret-value');
    expect((readCredentials({}) as { problems: string[] }).problems).toEqual(['IBMCLOUD_API_KEY is not set (an IBM Cloud IAM API key)']);
  });

  it('lists the secrets to redact', () => {
    expect(secretsOf({ apiKey: 'apikey-1234', hmac: { accessKeyId: 'id-1234', secretAccessKey: 'secret-1234' } })).toEqual([
      'apikey-1234',
      'secret-1234',
      'id-1234',
    ]);
    expect(secretsOf({ apiKey: 'apikey-1234' })).toEqual(['apikey-1234']);
  });
});

describe('error mapping', () => {
  const vpcError = {
    status: 400,
    message: 'Provided Name (x) is not unique',
    result: { errors: [{ code: 'validation_unique_failed', message: 'Provided Name (x) is not unique', target: { name: 'name' } }], trace: 't' },
  };
  const iamError = {
    status: 400,
    message: 'Access is denied due to invalid credentials.',
    result: { errorCode: 'BXNIM0415E', errorMessage: 'Provided API key could not be found.', context: { url: 'https://iam.cloud.ibm.com' } },
  };

  it('reads the service document of VPC, IAM, Resource Manager and S3 errors', () => {
    expect(serviceFault(vpcError)).toEqual({ status: 400, code: 'validation_unique_failed', message: 'Provided Name (x) is not unique (name)' });
    expect(serviceFault(iamError)).toEqual({ status: 400, code: 'BXNIM0415E', message: 'Provided API key could not be found.' });
    expect(serviceFault({ status: 404, message: 'x', result: { error_code: 'not_found', message: 'Resource group not found' } })).toEqual({
      status: 404,
      code: 'not_found',
      message: 'Resource group not found',
    });
    expect(serviceFault({ name: 'NoSuchBucket', message: 'The specified bucket does not exist', $metadata: { httpStatusCode: 404 } })).toEqual({
      status: 404,
      code: 'NoSuchBucket',
      message: 'The specified bucket does not exist',
    });
    expect(serviceFault({ name: 'NotFound', message: 'UnknownError', $metadata: { httpStatusCode: 404 } }).message).toBe('not found');
    expect(serviceFault(new Error('connect ECONNREFUSED 127.0.0.1:1'))).toEqual({ status: undefined, message: 'connect ECONNREFUSED 127.0.0.1:1' });
  });

  it('writes status and code after the message', () => {
    expect(faultText(serviceFault(vpcError))).toBe('Provided Name (x) is not unique (name) [HTTP 400 validation_unique_failed]');
    expect(faultText({ message: 'socket hang up' })).toBe('socket hang up');
  });

  it('hints by what the service said', () => {
    expect(hintFor(serviceFault(iamError), 'get an IAM token')).toMatch(/IBMCLOUD_API_KEY/);
    expect(hintFor(serviceFault(vpcError), 'create image')).toMatch(/already exists/);
    expect(hintFor({ status: 403, message: 'x' }, 'upload to COS')).toMatch(/HMAC/);
    expect(hintFor({ status: 403, message: 'x' }, 'upload to COS', 'iam')).toMatch(/COS refused the IAM token: give the API key Writer on the bucket/);
    expect(hintFor({ status: 403, message: 'x' }, 'create image')).toMatch(/Editor/);
    expect(hintFor({ status: 503, message: 'x' }, 'list images')).toMatch(/retry/);
  });

  it('redacts secrets anywhere in a message', () => {
    expect(redact('key abc123 and abc123 again, hmac s3cr3t', ['abc123', 's3cr3t'])).toBe('key *** and *** again, hmac ***');
  });

  it('names region and step, and keeps secrets out of message and cause', () => {
    const leaky = { status: 500, message: 'boom', result: { errors: [{ code: 'internal_error', message: 'failed for apikey-SECRET' }] } };
    const e = stepError('create image', 'eu-de', leaky, ['apikey-SECRET']);
    expect(e).toBeInstanceOf(FarmError);
    expect(e.code).toBe('UPLOAD');
    expect(e.message).toBe('IBM Cloud eu-de: create image failed: failed for *** [HTTP 500 internal_error]');
    expect(inspect(e, { depth: 10 })).not.toContain('apikey-SECRET');
  });

  it('turns cancellations into ABORTED', () => {
    const controller = new AbortController();
    controller.abort();
    expect(stepError('import image', 'us-east', new Error('canceled'), [], controller.signal).code).toBe('ABORTED');
    expect(stepError('import image', 'us-east', new DOMException('x', 'AbortError'), []).code).toBe('ABORTED');
    const own = new FarmError('UPLOAD', 'already clear');
    expect(stepError('x', 'us-east', own, [])).toBe(own);
  });
});

// A small XML writer for EC2 Query responses: objects become child elements in key order, arrays
// become <item> lists (EC2's "...Set" shape), undefined members are left out.

export type XmlValue = string | number | boolean | Date | undefined | null | XmlValue[] | { [k: string]: XmlValue };

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

function body(value: XmlValue): string {
  if (value === undefined || value === null) return '';
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => `<item>${body(v)}</item>`).join('');
  if (typeof value === 'object') {
    return Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => element(k, v))
      .join('');
  }
  return escapeXml(String(value));
}

export function element(name: string, value: XmlValue): string {
  return `<${name}>${body(value)}</${name}>`;
}

export const EC2_NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export function ec2Response(action: string, requestId: string, members: Record<string, XmlValue>): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_NS}">` +
    element('requestId', requestId) +
    body(members) +
    `</${action}Response>`
  );
}

/** EC2's error document (note: <RequestID>, unlike the success shape's <requestId>). */
export function ec2Error(code: string, message: string, requestId: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>' +
    element('Code', code) +
    element('Message', message) +
    '</Error></Errors>' +
    element('RequestID', requestId) +
    '</Response>'
  );
}

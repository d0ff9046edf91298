/**
 * File names are bytes; the index is JSON. Names that are valid UTF-8 become ordinary strings;
 * each byte of an invalid sequence becomes a lone surrogate U+DC80..U+DCFF (Python's
 * "surrogateescape"), which JSON carries as "\udcXX" and which maps back to the same byte.
 */

export function bytesToPath(buf: Uint8Array): string {
  let ascii = true;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('latin1');
  const s = Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('utf8');
  // A name without U+FFFD decoded cleanly; with it, it is either invalid or really holds U+FFFD.
  if (!s.includes('\uFFFD')) return s;
  return decodeEscaped(buf);
}

function decodeEscaped(buf: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < buf.length) {
    const b0 = buf[i]!;
    let cp = -1;
    let n = 1;
    if (b0 < 0x80) {
      cp = b0;
    } else if (b0 >= 0xc2 && b0 <= 0xdf) {
      n = 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      n = 3;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      n = 4;
    }
    if (n > 1 && i + n <= buf.length) {
      let v = b0 & (0x7f >> n);
      let ok = true;
      for (let k = 1; k < n; k++) {
        const b = buf[i + k]!;
        if ((b & 0xc0) !== 0x80) {
          ok = false;
          break;
        }
        v = (v << 6) | (b & 0x3f);
      }
      // Reject overlong forms, surrogates and values past U+10FFFF.
      const min = n === 2 ? 0x80 : n === 3 ? 0x800 : 0x10000;
      if (ok && v >= min && v <= 0x10ffff && !(v >= 0xd800 && v <= 0xdfff)) cp = v;
    }
    if (cp < 0) {
      out += String.fromCharCode(0xdc00 + b0);
      i += 1;
    } else {
      out += String.fromCodePoint(cp);
      i += n;
    }
  }
  return out;
}

export function pathToBytes(path: string): Buffer {
  let plain = true;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      plain = false;
      break;
    }
  }
  if (plain) return Buffer.from(path, 'utf8');
  const parts: number[] = [];
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < path.length) {
      const d = path.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        for (const b of Buffer.from(path.slice(i, i + 2), 'utf8')) parts.push(b);
        i++;
        continue;
      }
    }
    if (c >= 0xdc80 && c <= 0xdcff) {
      parts.push(c - 0xdc00);
      continue;
    }
    for (const b of Buffer.from(path[i]!, 'utf8')) parts.push(b);
  }
  return Buffer.from(parts);
}

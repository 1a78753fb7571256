// Reads the machine-readable stamp that the booth burns into every test-pattern frame.
//
// The layout is defined in kiosk/media/stamp.py (its module docstring) and implemented here
// exactly: cells of W/40 pixels (W = frame width), bit cells in columns 2-33 of rows 2-4, most
// significant bit first, black = 1. The cell centre is sampled at
// x = floor((2 * column + 1) * W / 80), y = floor((2 * row + 1) * W / 80) and is black when
// 299 R + 587 G + 114 B < 128000. Row 2 is the frame number, row 3 the capture time (Unix ms, low
// 32 bits), row 4 the CRC-32 (as zlib.crc32) of both as big-endian 32-bit words.

const CELLS_PER_WIDTH = 40;
const FIRST_CELL = 2;
const BITS = 32;
const ROWS = 3;
const LUMA_THRESHOLD = 128000;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** CRC-32 of frameNumber and captureMs as big-endian 32-bit words: the stamp's check word. */
export function checkWord(frameNumber, captureMs) {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, frameNumber >>> 0);
  view.setUint32(4, captureMs >>> 0);
  return crc32(bytes);
}

/**
 * The stamp in a canvas ImageData of the decoded video (any size, aspect ratio kept).
 * Returns {frameNumber, captureMs}, or null when there is no stamp or its check word fails.
 */
export function readStamp(imageData) {
  const { width, height, data } = imageData;
  // The white box ends at cell row 6.
  if (width < CELLS_PER_WIDTH || height < Math.floor((6 * width) / CELLS_PER_WIDTH)) return null;
  const words = [];
  for (let row = FIRST_CELL; row < FIRST_CELL + ROWS; row++) {
    const y = Math.floor(((2 * row + 1) * width) / (2 * CELLS_PER_WIDTH));
    let word = 0;
    for (let column = FIRST_CELL; column < FIRST_CELL + BITS; column++) {
      const x = Math.floor(((2 * column + 1) * width) / (2 * CELLS_PER_WIDTH));
      const i = (y * width + x) * 4;
      const luma = 299 * data[i] + 587 * data[i + 1] + 114 * data[i + 2];
      word = ((word << 1) | (luma < LUMA_THRESHOLD ? 1 : 0)) >>> 0;
    }
    words.push(word);
  }
  const [frameNumber, captureMs, check] = words;
  if (check !== checkWord(frameNumber, captureMs)) return null;
  return { frameNumber, captureMs };
}

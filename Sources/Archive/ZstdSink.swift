internal import CZstd
import DiskImage
import Foundation

/// Zstandard compression (one frame with a content checksum) through libzstd's streaming API,
/// using its worker threads. libzstd's multi-threaded output does not depend on the number of
/// workers, so it always runs in that mode (at least one worker) to keep output deterministic.
public final class ZstdSink: ByteSink {
    private let downstream: any ByteSink
    private let context: OpaquePointer
    private var output: [UInt8]
    private var finished = false
    public let level: Int

    /// - Parameters:
    ///   - level: 1 to 19 (ZSTD_maxCLevel() allows up to 22).
    ///   - threads: libzstd worker threads.
    public init(downstream: any ByteSink, level: Int = 3, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard level >= 1, level <= Int(ZSTD_maxCLevel()) else {
            throw FWError(.invalidArgument, "zstd level \(level) is not between 1 and \(ZSTD_maxCLevel())")
        }
        guard let context = ZSTD_createCCtx() else { throw FWError(.io, "zstd: cannot create a compression context") }
        self.context = context
        self.downstream = downstream
        self.level = level
        self.output = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)), "set the level")
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), "enable checksums")
        // Fails when libzstd was built without threads: then it compresses on this thread.
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Int32(max(1, min(threads, 64))))
    }

    deinit { ZSTD_freeCCtx(context) }

    private func check(_ rc: Int, _ what: String) throws {
        if ZSTD_isError(rc) != 0 {
            throw FWError(.io, "zstd: cannot \(what): \(String(cString: ZSTD_getErrorName(rc)))")
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw FWError(.invalidArgument, "zstd stream already finished") }
        guard !bytes.isEmpty else { return }
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size {
            _ = try step(&input, ZSTD_e_continue)
        }
    }

    public func finish() throws {
        guard !finished else { return }
        finished = true
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try step(&input, ZSTD_e_end) != 0 {}
        try downstream.finish()
    }

    /// One compressStream2 call; writes what it produced; returns libzstd's "bytes left to flush".
    private func step(_ input: inout ZSTD_inBuffer, _ mode: ZSTD_EndDirective) throws -> Int {
        let count = output.count
        let (rc, produced) = output.withUnsafeMutableBytes { raw -> (Int, Int) in
            var out = ZSTD_outBuffer(dst: raw.baseAddress, size: count, pos: 0)
            let rc = ZSTD_compressStream2(context, &out, &input, mode)
            return (rc, out.pos)
        }
        try check(rc, "compress")
        if produced > 0 {
            try output.withUnsafeBytes { try downstream.write(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
        }
        return rc
    }
}

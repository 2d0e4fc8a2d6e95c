internal import CDeflate
import DiskImage
import Foundation

/// Gzip compression in parallel with libdeflate, as a series of independent gzip members
/// (RFC 1952 allows several; gzip, pigz, zcat, Python's gzip and tarfile, GNU tar, bsdtar and
/// Go's compress/gzip read them as one stream: docs/archive-format.md).
///
/// The uncompressed stream is cut into chunks of `chunkSize` (1 MiB) bytes, a size that does not
/// depend on the thread count; each chunk is compressed on a worker thread by its own
/// libdeflate compressor into one whole gzip member (header with no name, MTIME 0; CRC-32 and
/// ISIZE trailer), and the members are written in order. libdeflate compresses a whole buffer
/// at once with no streaming state, so the chunks are independent of each other.
///
/// Deterministic: each member depends only on its chunk and the level, so the bytes are the same
/// for any thread count and any timing. Memory is bounded: at most `2 * threads + 4` chunks are in
/// flight; the writer waits for the oldest when that many are out. An empty stream is one empty
/// member, so the output is always a valid gzip file.
public final class GzipSink: ByteSink {
    /// Uncompressed bytes per gzip member.
    public static let chunkSize = 1 << 20
    /// libdeflate's levels: 1 (fastest) to 12 (smallest); 6 is the default, as gzip's.
    public static let levels = 1...12

    private let downstream: any ByteSink
    public let level: Int
    public let threads: Int
    private let pool: DeflatePool?
    private let inlineCompressor: GzipCompressor?
    private var current: [UInt8] = []
    private var pending: [DeflateJob] = []
    private let maxInFlight: Int
    private var membersWritten = 0
    private var finished = false

    /// - Parameters:
    ///   - level: 1 (fastest) to 12 (smallest).
    ///   - threads: compression threads; 1 compresses on the caller's thread.
    public init(downstream: any ByteSink, level: Int = 6, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard Self.levels.contains(level) else {
            throw FWError(.invalidArgument, "gzip level \(level) is not between \(Self.levels.lowerBound) and \(Self.levels.upperBound)")
        }
        self.downstream = downstream
        self.level = level
        self.threads = max(1, min(threads, 256))
        self.maxInFlight = 2 * self.threads + 4
        if self.threads > 1 {
            pool = DeflatePool(threads: self.threads, level: level)
            inlineCompressor = nil
        } else {
            pool = nil
            inlineCompressor = try GzipCompressor(level: level)
        }
        current.reserveCapacity(GzipSink.chunkSize)
    }

    deinit { pool?.stop() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw FWError(.invalidArgument, "gzip stream already finished") }
        var rest = bytes
        while !rest.isEmpty {
            let n = min(GzipSink.chunkSize - current.count, rest.count)
            current.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[0..<n]))
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            if current.count == GzipSink.chunkSize { try submit() }
        }
    }

    public func finish() throws {
        guard !finished else { return }
        if !current.isEmpty || membersWritten + pending.count == 0 { try submit() }
        finished = true
        while !pending.isEmpty { try writeOldest() }
        pool?.stop()
        try downstream.finish()
    }

    private func submit() throws {
        let job = DeflateJob(input: current)
        current = []
        current.reserveCapacity(GzipSink.chunkSize)
        if let pool {
            pool.enqueue(job)
            pending.append(job)
            while pending.count >= maxInFlight { try writeOldest() }
            while let first = pending.first, pool.isDone(first) { try writeOldest() }
        } else if let inlineCompressor {
            job.run(with: inlineCompressor)
            try write(job)
        }
    }

    private func writeOldest() throws {
        guard !pending.isEmpty else { return }
        let job = pending.removeFirst()
        pool?.wait(for: job)
        try write(job)
    }

    private func write(_ job: DeflateJob) throws {
        if let error = job.error { throw error }
        try job.output.withUnsafeBytes { try downstream.write($0) }
        membersWritten += 1
        job.release()
    }
}

/// One chunk to compress, and its gzip member (set by a worker, read by the writer after `done`).
final class DeflateJob: @unchecked Sendable {
    private(set) var input: [UInt8]
    private(set) var output: [UInt8] = []
    private(set) var error: FWError?
    var done = false

    init(input: [UInt8]) {
        self.input = input
    }

    func run(with compressor: GzipCompressor) {
        do {
            output = try compressor.member(of: input)
        } catch {
            self.error = FWError(error)
        }
    }

    func fail(_ e: FWError) { error = e }

    /// Drops the buffers once written.
    func release() {
        input = []
        output = []
    }
}

/// A libdeflate compressor at one level; compresses a whole buffer into one gzip member.
final class GzipCompressor {
    private let compressor: OpaquePointer

    init(level: Int) throws {
        guard let c = libdeflate_alloc_compressor(Int32(level)) else {
            throw FWError(.io, "gzip: libdeflate cannot allocate a level-\(level) compressor")
        }
        compressor = c
    }

    deinit { libdeflate_free_compressor(compressor) }

    /// `input` as one gzip member.
    func member(of input: [UInt8]) throws -> [UInt8] {
        let bound = libdeflate_gzip_compress_bound(compressor, input.count)
        var output = [UInt8](repeating: 0, count: bound)
        let produced = input.withUnsafeBytes { inRaw in
            output.withUnsafeMutableBytes { outRaw in
                libdeflate_gzip_compress(compressor, inRaw.baseAddress, inRaw.count, outRaw.baseAddress, outRaw.count)
            }
        }
        guard produced > 0 else {
            throw FWError(.io, "gzip: libdeflate could not compress a \(input.count)-byte chunk into \(bound) bytes")
        }
        output.removeSubrange(produced...)
        return output
    }
}

/// Worker threads, each with its own compressor, taking jobs in order from a shared queue.
final class DeflatePool: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [DeflateJob] = []
    private var stopping = false
    private let level: Int

    init(threads: Int, level: Int) {
        self.level = level
        for i in 0..<threads {
            let thread = Thread { [self] in self.work() }
            thread.name = "fwassemble-gzip-\(i)"
            thread.start()
        }
    }

    func enqueue(_ job: DeflateJob) {
        condition.lock()
        queue.append(job)
        condition.broadcast()
        condition.unlock()
    }

    func isDone(_ job: DeflateJob) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return job.done
    }

    func wait(for job: DeflateJob) {
        condition.lock()
        while !job.done { condition.wait() }
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        let compressor = try? GzipCompressor(level: level)  // nil: each job fails with the error below
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                return
            }
            let job = queue.removeFirst()
            condition.unlock()
            if let compressor {
                job.run(with: compressor)
            } else {
                job.fail(FWError(.io, "gzip: libdeflate cannot allocate a level-\(level) compressor"))
            }
            condition.lock()
            job.done = true
            condition.broadcast()
            condition.unlock()
        }
    }
}

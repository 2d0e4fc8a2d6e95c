internal import CZlib
import DiskImage
import Foundation

/// Gzip compression in parallel, pigz style, into one standard gzip member (RFC 1952).
///
/// The uncompressed stream is cut into blocks (128 KiB). Each block is compressed on a worker
/// thread as raw deflate (RFC 1951) primed with the previous block's last 32 KiB as a dictionary,
/// and ends with a sync flush (an empty stored block, so the next block starts on a byte boundary);
/// the last one ends with a final block. The outputs are written in order after a 10-byte header
/// (no name, MTIME 0, OS 3) and before the CRC-32 and ISIZE trailer.
///
/// Deterministic: each block's bytes depend only on its input and the previous input, so the
/// result is the same for any thread count and any timing. Memory is bounded: at most
/// `2 * threads + 8` blocks are in flight; the writer waits for the oldest when that many are out.
/// The 8 extra blocks keep the workers fed while the reading thread waits for a core (on a busy
/// machine a woken thread can wait tens of milliseconds; a 128 KiB block compresses in about 5).
public final class GzipSink: ByteSink {
    public static let blockSize = 128 << 10
    static let dictionarySize = 32 << 10

    private let downstream: any ByteSink
    public let level: Int
    public let threads: Int
    private let pool: DeflatePool?
    private let inlineDeflater: Deflater?
    private var current: [UInt8] = []
    private var previous: [UInt8] = []
    private var pending: [DeflateJob] = []
    private let maxInFlight: Int
    private var nextIndex = 0
    private var crc: UInt = 0
    private var totalIn: UInt64 = 0
    private var headerWritten = false
    private var finished = false

    /// - Parameters:
    ///   - level: 1 (fastest) to 9 (smallest).
    ///   - threads: compression threads; 1 compresses on the caller's thread.
    public init(downstream: any ByteSink, level: Int = 6, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard (1...9).contains(level) else {
            throw FWError(.invalidArgument, "gzip level \(level) is not between 1 and 9")
        }
        self.downstream = downstream
        self.level = level
        self.threads = max(1, min(threads, 256))
        self.maxInFlight = 2 * self.threads + 8
        if self.threads > 1 {
            pool = DeflatePool(threads: self.threads, level: level)
            inlineDeflater = nil
        } else {
            pool = nil
            inlineDeflater = try Deflater(level: level)
        }
        current.reserveCapacity(GzipSink.blockSize)
    }

    deinit { pool?.stop() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw FWError(.invalidArgument, "gzip stream already finished") }
        var rest = bytes
        while !rest.isEmpty {
            let room = GzipSink.blockSize - current.count
            let n = min(room, rest.count)
            current.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[0..<n]))
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            if current.count == GzipSink.blockSize { try submit(last: false) }
        }
    }

    public func finish() throws {
        guard !finished else { return }
        try submit(last: true)
        finished = true
        while !pending.isEmpty { try writeOldest() }
        pool?.stop()
        // Trailer: CRC32[4] at 0 and ISIZE[4] (length mod 2^32) at 4, little-endian.
        var trailer = [UInt8](repeating: 0, count: 8)
        let c = UInt32(truncatingIfNeeded: crc)
        let size = UInt32(truncatingIfNeeded: totalIn)
        for i in 0..<4 {
            trailer[i] = UInt8(truncatingIfNeeded: c >> (8 * UInt32(i)))
            trailer[4 + i] = UInt8(truncatingIfNeeded: size >> (8 * UInt32(i)))
        }
        try downstream.write(trailer)
        try downstream.finish()
    }

    private func submit(last: Bool) throws {
        if !headerWritten {
            headerWritten = true
            // ID1 ID2 CM=8 FLG=0 MTIME=0 XFL (2: best, 4: fastest) OS=3 (Unix)
            let xfl: UInt8 = level == 9 ? 2 : (level == 1 ? 4 : 0)
            try downstream.write([0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, xfl, 0x03])
        }
        let dictionary = previous.isEmpty ? [] : Array(previous.suffix(GzipSink.dictionarySize))
        let job = DeflateJob(index: nextIndex, input: current, dictionary: dictionary, last: last)
        nextIndex += 1
        previous = current
        current = []
        current.reserveCapacity(GzipSink.blockSize)
        if let pool {
            pool.enqueue(job)
            pending.append(job)
            while pending.count >= maxInFlight { try writeOldest() }
            while let first = pending.first, pool.isDone(first) { try writeOldest() }
        } else if let inlineDeflater {
            job.run(with: inlineDeflater)
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
        let length = job.input.count
        crc = UInt(CZlib.crc32_combine(uLong(crc), uLong(job.crc), Int(length)))
        totalIn += UInt64(length)
        job.release()
    }
}

/// One block to compress, and its result (set by a worker, read by the writer after `done`).
final class DeflateJob: @unchecked Sendable {
    let index: Int
    private(set) var input: [UInt8]
    private(set) var dictionary: [UInt8]
    let last: Bool
    private(set) var output: [UInt8] = []
    private(set) var crc: UInt32 = 0
    private(set) var error: FWError?
    var done = false

    init(index: Int, input: [UInt8], dictionary: [UInt8], last: Bool) {
        self.index = index
        self.input = input
        self.dictionary = dictionary
        self.last = last
    }

    func run(with deflater: Deflater) {
        do {
            output = try deflater.compress(input, dictionary: dictionary, last: last)
            crc = input.withUnsafeBytes { raw -> UInt32 in
                let p = raw.bindMemory(to: Bytef.self).baseAddress
                return UInt32(truncatingIfNeeded: CZlib.crc32(0, p, uInt(raw.count)))
            }
        } catch let e as FWError {
            error = e
        } catch {
            self.error = FWError(.io, "gzip: \(error)", cause: error)
        }
    }

    func fail(_ e: FWError) { error = e }

    /// Drops the buffers once written.
    func release() {
        input = []
        output = []
        dictionary = []
    }
}

/// A raw-deflate compressor owning its `z_stream` (at a fixed address: zlib keeps pointers into it).
final class Deflater {
    private let stream: UnsafeMutablePointer<z_stream>

    init(level: Int) throws {
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = fwa_deflateInit2(stream, Int32(level), -15, 8, Z_DEFAULT_STRATEGY)
        guard rc == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw FWError(.io, "gzip: deflateInit2 failed (\(rc))")
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Raw deflate of `input` primed with `dictionary`, ending with a sync flush, or with the
    /// final block when `last`.
    func compress(_ input: [UInt8], dictionary: [UInt8], last: Bool) throws -> [UInt8] {
        guard deflateReset(stream) == Z_OK else { throw FWError(.io, "gzip: deflateReset failed") }
        if !dictionary.isEmpty {
            let rc = dictionary.withUnsafeBytes { raw in
                deflateSetDictionary(stream, raw.bindMemory(to: Bytef.self).baseAddress, uInt(raw.count))
            }
            guard rc == Z_OK else { throw FWError(.io, "gzip: deflateSetDictionary failed (\(rc))") }
        }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(stream, uLong(input.count))) + 64)
        var produced = 0
        let flush = last ? Z_FINISH : Z_SYNC_FLUSH
        try input.withUnsafeBytes { inRaw in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: inRaw.bindMemory(to: Bytef.self).baseAddress)
            stream.pointee.avail_in = uInt(inRaw.count)
            while true {
                if produced == output.count { output += [UInt8](repeating: 0, count: 64 << 10) }
                let rc = output.withUnsafeMutableBytes { outRaw -> Int32 in
                    let base = outRaw.bindMemory(to: Bytef.self).baseAddress
                    stream.pointee.next_out = base.map { $0 + produced }
                    stream.pointee.avail_out = uInt(outRaw.count - produced)
                    let rc = deflate(stream, flush)
                    produced = outRaw.count - Int(stream.pointee.avail_out)
                    return rc
                }
                if last {
                    if rc == Z_STREAM_END { break }
                    guard rc == Z_OK || rc == Z_BUF_ERROR else { throw FWError(.io, "gzip: deflate failed (\(rc))") }
                } else {
                    guard rc == Z_OK || rc == Z_BUF_ERROR else { throw FWError(.io, "gzip: deflate failed (\(rc))") }
                    if stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 { break }
                }
            }
            stream.pointee.next_in = nil
            stream.pointee.next_out = nil
        }
        output.removeSubrange(produced...)
        return output
    }
}

/// Worker threads, each with its own `Deflater`, taking jobs in order from a shared queue.
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
        let deflater = try? Deflater(level: level)
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                return
            }
            let job = queue.removeFirst()
            condition.unlock()
            if let deflater {
                job.run(with: deflater)
            } else {
                job.fail(FWError(.io, "gzip: cannot set up a compressor (deflateInit2 failed)"))
            }
            condition.lock()
            job.done = true
            condition.broadcast()
            condition.unlock()
        }
    }
}


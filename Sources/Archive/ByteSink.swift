#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import DiskImage

/// Where an archive's bytes go: a file, stdout, a compressor, memory.
///
/// Writes are sequential. A sink may buffer; `finish()` pushes out everything it holds (and, for a
/// compressor, writes its trailer) and is called once, after the last `write`.
public protocol ByteSink: AnyObject {
    /// Takes all of `bytes` (a sink never writes only part of them).
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Writes out anything buffered; no `write` may follow.
    func finish() throws
}

extension ByteSink {
    /// Convenience for small writes (headers, padding).
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
}

/// Collects everything in memory (tests, small archives).
public final class MemorySink: ByteSink {
    public private(set) var bytes: [UInt8] = []
    public private(set) var finished = false

    public init() {}

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        self.bytes.append(contentsOf: bytes)
    }

    public func finish() throws { finished = true }
}

/// Writes to an open file descriptor through a 1 MiB buffer, retrying short writes and EINTR.
/// Does not own the descriptor (the caller closes it).
public final class FileDescriptorSink: ByteSink {
    public let descriptor: Int32
    /// For messages: the file name, or "standard output".
    public let name: String
    private var buffer: UnsafeMutableRawBufferPointer
    private var used = 0
    /// Bytes handed to the descriptor so far.
    public private(set) var bytesWritten: UInt64 = 0

    public init(descriptor: Int32, name: String, bufferSize: Int = 1 << 20) {
        self.descriptor = descriptor
        self.name = name
        self.buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bufferSize, 4096), alignment: 16)
    }

    deinit { buffer.deallocate() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        if bytes.count > buffer.count - used {
            try flush()
            if bytes.count >= buffer.count {
                try writeAll(bytes)
                return
            }
        }
        guard let dst = buffer.baseAddress, let src = bytes.baseAddress else { return }
        (dst + used).copyMemory(from: src, byteCount: bytes.count)
        used += bytes.count
    }

    public func finish() throws { try flush() }

    private func flush() throws {
        guard used > 0 else { return }
        try writeAll(UnsafeRawBufferPointer(rebasing: buffer[0..<used]))
        used = 0
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(descriptor, base + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw FWError(.io, "cannot write \(name): \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw FWError(.io, "cannot write \(name): no progress") }
            done += n
        }
        bytesWritten += UInt64(bytes.count)
    }
}

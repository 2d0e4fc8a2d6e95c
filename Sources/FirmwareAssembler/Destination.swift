import Archive
import DiskImage
#if canImport(Glibc)
import Glibc
#endif

/// Where `Disk.assemble(to:options:)` writes the compressed archive.
///
/// Whatever the destination, the bytes are the same: a path, a file descriptor and a callback
/// receive byte-identical archives for the same disk and options.
public enum AssembleDestination: Sendable, CustomStringConvertible {
    /// A file, written to a temporary file beside it and renamed over it only on success; "-" is
    /// standard output. The report goes to `request.output.report`, else `<path>.report.json`
    /// (no report file for standard output unless `report` is set).
    case path(String)
    /// An open file descriptor (a pipe, a socket, a regular file), written sequentially from its
    /// current position. It is never closed, seeked or synced; on failure what was written stays
    /// written. A report file is written only when `request.output.report` is set.
    case fileDescriptor(Int32)
    /// A callback receiving the compressed archive in order, in chunks of at most 1 MiB. The
    /// buffer is valid only during the call (copy what you keep). Throwing from the callback stops
    /// the assembly with that error. Called on the thread that called `assemble`. A report file is
    /// written only when `request.output.report` is set.
    case chunks(@Sendable (UnsafeRawBufferPointer) throws -> Void)

    /// What the report's `output` field says: the path, "fd N", or "callback".
    public var description: String {
        switch self {
        case .path(let path): return path
        case .fileDescriptor(let fd): return "fd \(fd)"
        case .chunks: return "callback"
        }
    }

    /// The path, for a path destination.
    var pathDescription: String? {
        if case .path(let p) = self { return p }
        return nil
    }

    /// Opens the destination for writing (a path through `OutputTarget`, refusing the inputs).
    func open(inputs: [String], cancellation: Cancellation) throws -> any ArchiveOutput {
        switch self {
        case .path(let path):
            return try OutputTarget(path, inputs: inputs, cancellation: cancellation)
        case .fileDescriptor(let fd):
            guard fd >= 0 else { throw FWError(.invalidArgument, "invalid file descriptor \(fd)") }
            return DescriptorOutput(sink: GuardedSink(FileDescriptorSink(descriptor: fd, name: "file descriptor \(fd)"),
                                                      cancellation: cancellation))
        case .chunks(let deliver):
            return DescriptorOutput(sink: GuardedSink(CallbackSink(deliver: deliver), cancellation: cancellation))
        }
    }

    /// Where the JSON report goes: `explicit` if given, else `<path>.report.json` for a path
    /// other than standard output, else nowhere.
    func reportPath(explicit: String?) -> String? {
        if let explicit { return explicit }
        // Beside a file output; none for standard output or a device such as /dev/null.
        guard case .path(let path) = self, OutputTarget.takesReportBeside(path) else { return nil }
        return path + ".report.json"
    }
}

/// An opened destination: the sink the compressor writes into, and how to finish.
protocol ArchiveOutput: AnyObject {
    var archiveSink: any ByteSink { get }
    /// Flushes everything (and, for a file, renames it into place).
    func commit() throws
    /// Gives up: removes a temporary file, if there is one.
    func abort()
}

extension OutputTarget: ArchiveOutput {
    var archiveSink: any ByteSink { sink }
    func commit() throws { try commit(mode: nil) }
}

/// A destination with nothing to rename or remove: a caller's descriptor or callback.
final class DescriptorOutput: ArchiveOutput {
    let archiveSink: any ByteSink

    init(sink: any ByteSink) {
        archiveSink = sink
    }

    func commit() throws { try archiveSink.finish() }
    func abort() {}
}

/// Collects writes into 1 MiB chunks handed to a callback (the last one when finished).
final class CallbackSink: ByteSink {
    static let chunkSize = 1 << 20
    private let deliver: @Sendable (UnsafeRawBufferPointer) throws -> Void
    private var buffer: [UInt8] = []

    init(deliver: @escaping @Sendable (UnsafeRawBufferPointer) throws -> Void) {
        self.deliver = deliver
        buffer.reserveCapacity(Self.chunkSize)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes[...]
        while !rest.isEmpty {
            let n = min(Self.chunkSize - buffer.count, rest.count)
            buffer.append(contentsOf: rest.prefix(n))
            rest = rest.dropFirst(n)
            if buffer.count == Self.chunkSize { try flush() }
        }
    }

    func finish() throws { try flush() }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try deliver($0) }
        buffer.removeAll(keepingCapacity: true)
    }
}


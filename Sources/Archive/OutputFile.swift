#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import DiskImage

/// The output of a command: a temporary file beside the target, renamed over it on success and
/// removed on failure, or standard output for "-".
public final class OutputFile {
    /// The path the caller asked for ("-" for standard output).
    public let target: String
    /// The temporary file being written (nil for standard output).
    public private(set) var temporaryPath: String?
    private var descriptor: Int32
    private var open = true
    /// Buffered sink over the descriptor.
    public let sink: FileDescriptorSink

    /// Creates `.NAME.XXXXXX.tmp` in the target's directory (mode 0644 after umask), or uses
    /// standard output for "-".
    public init(path: String) throws {
        target = path
        if path == "-" {
            descriptor = 1
            temporaryPath = nil
            sink = FileDescriptorSink(descriptor: 1, name: "standard output")
            return
        }
        guard !path.isEmpty else { throw FWError(.invalidArgument, "empty output path") }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !base.isEmpty else { throw FWError(.invalidArgument, "output path \(path) names a directory") }
        var template = Array((directory + "." + base + ".XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buf -> Int32 in
            guard let base = buf.baseAddress else { return -1 }
            return mkstemp(base)
        }
        guard fd >= 0 else {
            throw FWError(.io, "cannot create a temporary file beside \(path): \(String(cString: strerror(errno)))")
        }
        let tmp = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // mkstemp creates 0600; archives are ordinary files.
        let mask = umask(0)
        umask(mask)
        _ = fchmod(fd, 0o666 & ~mask)
        descriptor = fd
        temporaryPath = tmp
        sink = FileDescriptorSink(descriptor: fd, name: path)
    }

    deinit { abort() }

    /// Flushes, syncs and renames the temporary file over the target (for stdout: flushes).
    public func commit() throws {
        guard open else { throw FWError(.invalidArgument, "output \(target) already closed") }
        try sink.finish()
        guard let tmp = temporaryPath else {
            open = false
            return
        }
        if fsync(descriptor) != 0 {
            let message = String(cString: strerror(errno))
            abort()
            throw FWError(.io, "cannot write \(target): fsync failed: \(message)")
        }
        close(descriptor)
        open = false
        if rename(tmp, target) != 0 {
            let message = String(cString: strerror(errno))
            unlink(tmp)
            temporaryPath = nil
            throw FWError(.io, "cannot rename \(tmp) to \(target): \(message)")
        }
        temporaryPath = nil
    }

    /// Closes and removes the temporary file (nothing for stdout or after commit).
    public func abort() {
        guard open else { return }
        open = false
        if let tmp = temporaryPath {
            close(descriptor)
            unlink(tmp)
            temporaryPath = nil
        }
    }
}

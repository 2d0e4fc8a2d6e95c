#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import DiskImage

/// The output of a command: a temporary file beside the target, renamed over it on success and
/// removed on failure, or standard output for "-". A target that exists and is not a regular
/// file (/dev/null, a FIFO, a block device) is written in place: renaming over it would replace
/// the device node with a file.
public final class OutputFile {
    /// The path the caller asked for ("-" for standard output).
    public let target: String
    /// The temporary file being written (nil for standard output).
    public private(set) var temporaryPath: String?
    private var descriptor: Int32
    private var open = true
    /// Buffered sink over the descriptor.
    public let sink: FileDescriptorSink
    /// The file has no name yet (O_TMPFILE); commit links it into `directory`.
    private let isUnnamed: Bool
    private var directory = "."
    private var base = ""

    /// Creates an unnamed file in the target's directory (O_TMPFILE: a killed run leaves
    /// nothing behind), or, where the filesystem cannot, `.NAME.XXXXXX` beside the target; mode
    /// 0666 minus the umask. "-" is standard output.
    public init(path: String) throws {
        target = path
        if path == "-" {
            descriptor = 1
            temporaryPath = nil
            isUnnamed = false
            sink = FileDescriptorSink(descriptor: 1, name: "standard output")
            return
        }
        guard !path.isEmpty else { throw FWError(.invalidArgument, "empty output path") }
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
            guard info.st_mode & S_IFMT != S_IFDIR else { throw FWError(.invalidArgument, "output path \(path) is a directory") }
            let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw FWError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
            descriptor = fd
            temporaryPath = nil
            isUnnamed = false
            sink = FileDescriptorSink(descriptor: fd, name: path)
            return
        }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !base.isEmpty else { throw FWError(.invalidArgument, "output path \(path) names a directory") }
        self.directory = directory.isEmpty ? "." : directory
        self.base = base
        let mask = umask(0)
        umask(mask)
        // O_TMPFILE (__O_TMPFILE | O_DIRECTORY): an inode with no name until commit links it.
        let unnamed = openUnnamedFile(in: self.directory, mode: 0o666 & ~mask)
        if unnamed >= 0 {
            descriptor = unnamed
            temporaryPath = nil
            isUnnamed = true
            sink = FileDescriptorSink(descriptor: unnamed, name: path)
            return
        }
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
        _ = fchmod(fd, 0o666 & ~mask)
        descriptor = fd
        temporaryPath = tmp
        isUnnamed = false
        sink = FileDescriptorSink(descriptor: fd, name: path)
    }

    deinit { abort() }

    /// Flushes, syncs and renames the temporary file over the target (for stdout: flushes).
    public func commit() throws {
        guard open else { throw FWError(.invalidArgument, "output \(target) already closed") }
        try sink.finish()
        if isUnnamed {
            try linkUnnamed()
        }
        guard let tmp = temporaryPath else {
            // Standard output, or a device or FIFO written in place.
            open = false
            if descriptor != 1 { close(descriptor) }
            return
        }
        if !isUnnamed, fsync(descriptor) != 0 {
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

    /// Gives the unnamed file a hidden name beside the target (linkat through /proc/self/fd), so
    /// that the rename in `commit` can replace an existing target atomically.
    private func linkUnnamed() throws {
        if fsync(descriptor) != 0 {
            let message = String(cString: strerror(errno))
            abort()
            throw FWError(.io, "cannot write \(target): fsync failed: \(message)")
        }
        let source = "/proc/self/fd/\(descriptor)"
        for attempt in 0..<100 {
            let name = directory + "/." + base + ".\(getpid()).\(attempt)"
            if linkat(AT_FDCWD, source, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0 {
                temporaryPath = name
                return
            }
            if errno != EEXIST { break }
        }
        let message = String(cString: strerror(errno))
        abort()
        throw FWError(.io, "cannot create \(target): \(message)")
    }

    /// Closes and removes the temporary file (nothing for stdout or after commit).
    public func abort() {
        guard open else { return }
        open = false
        if let tmp = temporaryPath {
            unlink(tmp)
            temporaryPath = nil
        }
        if descriptor != 1 { close(descriptor) }
    }
}

/// An unnamed regular file in `directory` (Linux O_TMPFILE, i.e. __O_TMPFILE | O_DIRECTORY), or
/// -1 where the filesystem or kernel cannot make one.
private func openUnnamedFile(in directory: String, mode: mode_t) -> Int32 {
    open(directory, 0o20000000 | O_DIRECTORY | O_WRONLY | O_CLOEXEC, mode)
}

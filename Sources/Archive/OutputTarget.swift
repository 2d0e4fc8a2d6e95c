#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import DiskImage

/// The one place every output of fwassemble is opened, written and put in place: archives
/// (assemble, extract, exports), ext4 and qcow2 images, and JSON reports.
///
/// The rules (docs/assembly.md, "Outputs"):
/// - "-" is standard output, written in place.
/// - A symlink is followed (its target is written; the link stays a link).
/// - An existing device, FIFO or socket is written in place, never replaced by a file; a
///   directory is refused.
/// - A path that is one of the job's inputs (the disk image, a backing file, an added tar),
///   compared by device and inode so a symlink or hardlink to it is caught, is refused before
///   anything is written.
/// - Anything else is written to a temporary file beside it (unnamed where the filesystem can,
///   else `.NAME.fwassemble-tmp.PID.N`) and renamed over it only when complete: an existing file
///   is replaced only by a complete new one. On failure or cancellation (`Cancellation`: SIGINT,
///   SIGTERM, SIGHUP in the CLI) the temporary file is removed; leftovers of a killed run (SIGKILL)
///   are removed by the next run writing to the same destination.
public final class OutputTarget {
    /// How the job writes: through `sink` (a stream), or by a tool that needs a path
    /// (`temporaryPath`: libext2fs, qemu-img). A file output cannot go to a device or stdout.
    public enum Mode: Sendable { case stream, file }

    /// The path as the caller gave it ("-" for standard output).
    public let requested: String
    /// The path written: `requested` with symlinks followed.
    public let path: String
    /// True when written in place (standard output, a device, a FIFO).
    public let inPlace: Bool
    /// The named temporary file (`.file` mode always; `.stream` only where no unnamed file could
    /// be made, and after commit has linked it).
    public private(set) var temporaryPath: String?
    private var descriptor: Int32 = -1
    /// False for standard output ("-"), which is the caller's.
    private var ownsDescriptor = true
    private var open = true
    private let unnamed: Bool
    /// The stop request its writes and commit check; nil: none (`write(_:to:inputs:)`'s reports).
    private let cancellation: Cancellation?
    private var streamSink: GuardedSink?

    /// The marker in temporary names, so a later run can tell its own leftovers.
    static let marker = ".fwassemble-tmp."

    /// Opens `requested` for writing. `inputs` are the files the job reads (none may be replaced).
    /// `cancellation`: the stop request its writes and commit check (default the process's;
    /// `stoppable: false` checks none).
    public init(_ requested: String, mode: Mode = .stream, inputs: [String] = [], cancellation: Cancellation? = nil,
                stoppable: Bool = true) throws {
        self.requested = requested
        self.cancellation = stoppable ? cancellation ?? .process : nil
        guard !requested.isEmpty else { throw FWError(.invalidArgument, "empty output path") }
        if requested == "-" {
            guard mode == .stream else { throw FWError(.invalidArgument, "this output cannot be written to standard output; give a file name") }
            path = "-"
            inPlace = true
            unnamed = false
            descriptor = 1
            ownsDescriptor = false
            return
        }
        path = try Self.followLinks(requested)
        try Self.refuse(requested, ifAnyOf: inputs)
        if let fd = Self.descriptorNumber(path) {
            // One of our descriptors (-o /dev/stdout): written through it, as "-" is, so an
            // append (>>) or a pipe behaves as the shell set it up.
            guard mode == .stream else { throw FWError(.invalidArgument, "output \(requested) is a file descriptor; this output is written to a regular file") }
            let copy = dup(fd)
            guard copy >= 0 else { throw FWError(.io, "cannot write \(requested): \(String(cString: strerror(errno)))") }
            descriptor = copy
            inPlace = true
            unnamed = false
            return
        }
        var info = stat()
        let exists = stat(path, &info) == 0
        if exists, info.st_mode & S_IFMT != S_IFREG {
            let kind = info.st_mode & S_IFMT
            guard kind != S_IFDIR else { throw FWError(.invalidArgument, "output \(requested) is a directory") }
            guard mode == .stream else {
                throw FWError(.invalidArgument, "output \(requested) exists and is not a regular file (a device, FIFO or socket); this output is written to a regular file")
            }
            let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw FWError(.io, "cannot open \(requested): \(String(cString: strerror(errno)))") }
            descriptor = fd
            inPlace = true
            unnamed = false
            return
        }
        inPlace = false
        let (directory, base) = Self.split(path)
        guard !base.isEmpty, base != ".", base != ".." else { throw FWError(.invalidArgument, "output path \(requested) names a directory") }
        var dirInfo = stat()
        guard stat(directory, &dirInfo) == 0, dirInfo.st_mode & S_IFMT == S_IFDIR else {
            throw FWError(.notFound, "cannot write \(requested): the folder \(directory) does not exist")
        }
        Self.removeLeftovers(directory: directory, base: base)
        let mask = umask(0)
        umask(mask)
        if mode == .stream {
            // O_TMPFILE (__O_TMPFILE | O_DIRECTORY): an inode with no name until commit links it,
            // so even SIGKILL leaves nothing.
            let fd = Glibc.open(directory, 0o20000000 | O_DIRECTORY | O_RDWR | O_CLOEXEC, 0o666 & ~mask)
            if fd >= 0 {
                descriptor = fd
                unnamed = true
                return
            }
        }
        unnamed = false
        let (fd, name) = try Self.createNamed(directory: directory, base: base, mode: 0o666 & ~mask, for: requested)
        descriptor = fd
        temporaryPath = name
    }

    deinit { abort() }

    /// The sink a stream job writes into (checks the cancellation on every write).
    public var sink: any ByteSink {
        if let streamSink { return streamSink }
        let s = GuardedSink(FileDescriptorSink(descriptor: descriptor, name: requested == "-" ? "standard output" : requested),
                            cancellation: cancellation)
        streamSink = s
        return s
    }

    /// The open descriptor of the temporary file (or the device, or stdout).
    public var fileDescriptor: Int32 { descriptor }

    /// Flushes the stream, syncs, and puts the file in place (`mode`: its permissions, default
    /// 0666 minus the umask). A cancellation pending at this point aborts instead.
    public func commit(mode: mode_t? = nil) throws {
        guard open else { throw FWError(.invalidArgument, "output \(requested) already closed") }
        do {
            try streamSink?.finish()
            try cancellation?.check()
        } catch {
            abort()
            throw error
        }
        if inPlace {
            open = false
            if ownsDescriptor { close(descriptor) }
            return
        }
        if fsync(descriptor) != 0 {
            let message = String(cString: strerror(errno))
            abort()
            throw FWError(.io, "cannot write \(requested): fsync failed: \(message)")
        }
        if let mode { fchmod(descriptor, mode) }
        if unnamed { try linkUnnamed() }
        close(descriptor)
        open = false
        guard let tmp = temporaryPath else { return }
        if rename(tmp, path) != 0 {
            let message = String(cString: strerror(errno))
            unlink(tmp)
            temporaryPath = nil
            throw FWError(.io, "cannot rename the finished output to \(requested): \(message)")
        }
        temporaryPath = nil
    }

    /// Replaces the temporary file's content by the file at `finished` (a converted image, made
    /// beside it by a tool), which is renamed into the temporary name. Nothing but `.file` mode.
    public func adopt(_ finished: String) throws {
        guard let tmp = temporaryPath else { throw FWError(.invalidArgument, "output \(requested) has no temporary file") }
        guard rename(finished, tmp) == 0 else {
            throw FWError(.io, "cannot move \(finished) into place for \(requested): \(String(cString: strerror(errno)))")
        }
        close(descriptor)
        descriptor = Glibc.open(tmp, O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else { throw FWError(.io, "cannot reopen \(tmp): \(String(cString: strerror(errno)))") }
    }

    /// A second temporary name beside the output (for a tool's own output, such as qemu-img's),
    /// with the same marker so it is cleaned up the same way.
    public func siblingTemporaryPath(suffix: String) -> String {
        let (directory, base) = Self.split(path)
        return "\(directory)/.\(base)\(Self.marker)\(getpid()).\(suffix)"
    }

    /// Closes and removes the temporary file (nothing for stdout, a device, or after commit).
    public func abort() {
        guard open else { return }
        open = false
        if let tmp = temporaryPath {
            unlink(tmp)
            temporaryPath = nil
        }
        if ownsDescriptor, descriptor >= 0 { close(descriptor) }
    }

    /// Writes `bytes` whole to `requested` under the same rules (reports). A report follows its
    /// job's committed output, so a stop request (SIGINT, SIGTERM, SIGHUP) arriving after that
    /// commit does not cancel it: the job is done, and its output is not left without a report
    /// by a process that then ends by the signal as if nothing was written.
    public static func write(_ bytes: [UInt8], to requested: String, inputs: [String] = []) throws {
        let target = try OutputTarget(requested, inputs: inputs, stoppable: false)
        do {
            try target.sink.write(bytes)
            try target.commit()
        } catch {
            target.abort()
            throw error
        }
    }

    /// Throws when `requested` (symlinks followed) is one of `inputs` (device and inode): the
    /// check every output makes before anything is written.
    public static func refuse(_ requested: String, ifAnyOf inputs: [String]) throws {
        for input in inputs where sameFile(requested, input) {
            throw FWError(.invalidArgument, "output \(requested) is the input \(input)\(requested == input ? "" : " (the same file)"); refusing to overwrite it")
        }
    }

    /// Whether two paths name the same file (device and inode), following symlinks; false when
    /// either does not exist.
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var x = stat(), y = stat()
        guard stat(a, &x) == 0, stat(b, &y) == 0 else { return false }
        return x.st_dev == y.st_dev && x.st_ino == y.st_ino
    }

    // MARK: - Paths

    /// `path` with every symlink in its last component followed (at most 40, as the kernel);
    /// a dangling link gives the path it points to, which is then created.
    static func followLinks(_ path: String) throws -> String {
        guard let followed = followingLinks(path) else {
            throw FWError(.invalidArgument, "output \(path): too many levels of symbolic links")
        }
        return followed
    }

    /// `followLinks`, nil for a loop (more than 40 links).
    static func followingLinks(_ path: String) -> String? {
        var current = path
        for _ in 0..<40 {
            // /proc/self/fd/N (where /dev/stdout leads) is a descriptor, not a name to follow.
            if descriptorNumber(current) != nil { return current }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(current, &buffer, buffer.count - 1)
            if n < 0 { return current }
            let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            current = target.hasPrefix("/") ? target : split(current).directory + "/" + target
        }
        return nil
    }

    /// N for `/proc/self/fd/N` and `/dev/fd/N` (where /dev/stdout and /dev/stderr lead): an
    /// output that is one of this process's descriptors, written in place like "-".
    static func descriptorNumber(_ path: String) -> Int32? {
        for prefix in ["/proc/self/fd/", "/dev/fd/", "/proc/\(getpid())/fd/"] where path.hasPrefix(prefix) {
            return Int32(path.dropFirst(prefix.count))
        }
        return nil
    }

    /// Whether the default report goes beside `requested`: a regular file (or one to be
    /// made), not standard output, a device, a FIFO or a descriptor (/dev/stdout).
    public static func takesReportBeside(_ requested: String) -> Bool {
        guard requested != "-", let path = followingLinks(requested) else { return false }
        if descriptorNumber(path) != nil { return false }
        var info = stat()
        return stat(path, &info) != 0 || info.st_mode & S_IFMT == S_IFREG
    }

    /// The folder ("." when none) and the last component.
    static func split(_ path: String) -> (directory: String, base: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }

    /// `.BASE.fwassemble-tmp.PID.N`, created exclusively.
    private static func createNamed(directory: String, base: String, mode: mode_t, for requested: String) throws -> (Int32, String) {
        for attempt in 0..<1000 {
            let name = "\(directory)/.\(base)\(marker)\(getpid()).\(attempt)"
            let fd = Glibc.open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            if fd >= 0 { return (fd, name) }
            if errno != EEXIST {
                throw FWError(.io, "cannot create a temporary file beside \(requested): \(String(cString: strerror(errno)))")
            }
        }
        throw FWError(.io, "cannot create a temporary file beside \(requested): too many left over")
    }

    /// Gives the unnamed file its temporary name (linkat through /proc/self/fd), so the rename
    /// in `commit` replaces an existing output atomically.
    private func linkUnnamed() throws {
        let (directory, base) = Self.split(path)
        for attempt in 0..<1000 {
            let name = "\(directory)/.\(base)\(Self.marker)\(getpid()).\(attempt)"
            if linkat(AT_FDCWD, "/proc/self/fd/\(descriptor)", AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0 {
                temporaryPath = name
                return
            }
            if errno != EEXIST { break }
        }
        let message = String(cString: strerror(errno))
        abort()
        throw FWError(.io, "cannot create \(requested): \(message)")
    }

    /// Removes `.BASE.fwassemble-tmp.PID.*` files whose process no longer runs (a run killed
    /// with SIGKILL, or a machine that went down).
    static func removeLeftovers(directory: String, base: String) {
        guard let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        let prefix = "." + base + marker
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix(prefix) else { continue }
            let rest = name.dropFirst(prefix.count)
            guard let dot = rest.firstIndex(of: "."), let pid = pid_t(rest[..<dot]), pid > 0 else { continue }
            // Signal 0 asks whether the process exists; ESRCH: it does not.
            if kill(pid, 0) != 0, errno == ESRCH {
                unlink(directory + "/" + name)
            }
        }
    }
}

/// A sink that stops the job when it is cancelled (`Cancellation.check`: this one or the
/// process's), before each write; with no cancellation, a plain pass-through.
public final class GuardedSink: ByteSink {
    private let downstream: any ByteSink
    private let cancellation: Cancellation?

    public init(_ downstream: any ByteSink, cancellation: Cancellation?) {
        self.downstream = downstream
        self.cancellation = cancellation
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try cancellation?.check()
        try downstream.write(bytes)
    }

    public func finish() throws { try downstream.finish() }
}

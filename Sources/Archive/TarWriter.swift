import DiskImage
import FileSystems

/// Options of the tar writer; the defaults give deterministic output.
public struct TarOptions: Sendable {
    /// Also write PAX `atime`/`ctime` when the entry has them (off: they change on every read).
    public var includeAccessAndChangeTimes: Bool
    /// Size of the one buffer file contents are streamed through.
    public var chunkSize: Int

    public init(includeAccessAndChangeTimes: Bool = false, chunkSize: Int = 1 << 20) {
        self.includeAccessAndChangeTimes = includeAccessAndChangeTimes
        self.chunkSize = max(chunkSize, UstarHeader.blockSize)
    }
}

/// Something written with a loss the caller should report (the archive stays valid). Only the
/// archiver makes one (its memberwise init is internal).
public struct ArchiveProblem: Sendable, CustomStringConvertible, Equatable {
    /// "/etc/fstab"
    public var path: String
    public var message: String

    public var description: String { "\(path): \(message)" }
}

/// A streaming POSIX tar (pax format) writer with the conventions of fwassemble's output
/// (docs/archive-format.md): members named "./path" with the root "./" first, directories ending
/// in "/", numeric owners only, all 07777 mode bits, PAX records for anything ustar cannot hold
/// (long or non-ASCII names and link targets, nanosecond mtimes, large ids and sizes) and every
/// xattr as a raw `SCHILY.xattr.<name>` record.
///
/// Memory is bounded: file contents go through one reused buffer of `chunkSize` bytes.
public final class TarWriter {
    private let sink: any ByteSink
    public let options: TarOptions
    private let buffer: UnsafeMutableRawBufferPointer
    private var zeroBuffer: UnsafeMutableRawBufferPointer?
    private var finished = false
    /// Losses met so far (short or long file contents, unwritable xattr names).
    public private(set) var problems: [ArchiveProblem] = []
    /// Uncompressed archive bytes written so far.
    public private(set) var bytesWritten: UInt64 = 0
    /// Members written so far (PAX headers not counted).
    public private(set) var memberCount = 0

    public init(sink: any ByteSink, options: TarOptions = TarOptions()) {
        self.sink = sink
        self.options = options
        self.buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: options.chunkSize, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        zeroBuffer?.deallocate()
    }

    /// Writes a member without content (everything but a non-empty regular file).
    public func append(_ entry: TarEntry) throws {
        guard entry.kind != .regular || entry.size == 0 else {
            throw FWError(.invalidArgument, "regular file of \(entry.size) bytes needs its contents", path: entry.displayPath)
        }
        try writeHeaders(entry)
    }

    /// Writes a regular file, streaming `entry.size` bytes from `contents`. A stream that ends
    /// early is padded with zeros, one that goes on is cut, and a read error mid-file pads the rest
    /// with zeros: each is listed in `problems` and the archive stays valid. Errors of the sink
    /// are thrown.
    public func append(_ entry: TarEntry, contents: any FileContents) throws {
        guard entry.kind == .regular else {
            throw FWError(.invalidArgument, "only regular files have contents", path: entry.displayPath)
        }
        try writeHeaders(entry)
        var remaining = entry.size
        var readFailure: Error?
        while remaining > 0 {
            let want = Int(min(UInt64(buffer.count), remaining))
            let got: Int
            do {
                got = try contents.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            } catch {
                readFailure = error
                break
            }
            guard got > 0 else { break }
            let n = min(got, want)
            try emit(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            remaining -= UInt64(n)
        }
        if remaining > 0 {
            let done = entry.size - remaining
            if let readFailure {
                let message = FWError(readFailure).message
                report(entry, "read error after \(done) of \(entry.size) bytes (\(message)); the rest is written as zeros")
            } else {
                report(entry, "contents ended after \(done) of \(entry.size) bytes; the rest is written as zeros")
            }
            try emitZeros(remaining)
        } else if readFailure == nil {
            // The declared size is written; a stream that still has bytes was cut.
            let probe = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<1])
            if let extra = try? contents.read(into: probe), extra > 0 {  // only asks whether more follows; the size was written
                report(entry, "contents longer than the recorded size of \(entry.size) bytes; cut to that size")
            }
        }
        try pad(entry.size)
    }

    /// Ends the archive with two zero blocks and finishes the sink. Nothing may be appended after.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        try emitZeros(UInt64(2 * UstarHeader.blockSize))
        try sink.finish()
    }

    // MARK: - Headers

    private func writeHeaders(_ entry: TarEntry) throws {
        guard !finished else { throw FWError(.invalidArgument, "tar archive already finished", path: entry.displayPath) }
        var header = UstarHeader()
        var pax = PaxRecords()

        // Member name: "./" for the root, "./path", directories with a trailing "/".
        var name: [UInt8] = [0x2E, 0x2F]
        name += entry.path
        if entry.kind == .directory, !entry.path.isEmpty { name.append(0x2F) }

        var link: [UInt8] = []
        switch entry.kind {
        case .regular: header.typeFlag = .regular
        case .directory: header.typeFlag = .directory
        case .symlink(let target):
            header.typeFlag = .symlink
            link = target
        case .hardlink(let target):
            header.typeFlag = .hardlink
            link = [0x2E, 0x2F] + target
        case .characterDevice(let dev):
            header.typeFlag = .character
            header.devMajor = UInt64(dev.major)
            header.devMinor = UInt64(dev.minor)
        case .blockDevice(let dev):
            header.typeFlag = .block
            header.devMajor = UInt64(dev.major)
            header.devMinor = UInt64(dev.minor)
        case .fifo: header.typeFlag = .fifo
        }

        let nameNeedsPax = name.count > 100 || name.contains { $0 >= 0x80 }
        let linkNeedsPax = link.count > 100 || link.contains { $0 >= 0x80 }
        if (nameNeedsPax && !isValidUTF8(name)) || (linkNeedsPax && !isValidUTF8(link)) {
            pax.add("hdrcharset", "BINARY")
        }
        if nameNeedsPax { pax.add("path", name) }
        if linkNeedsPax { pax.add("linkpath", link) }
        header.name = Array(name.prefix(100))
        header.linkName = Array(link.prefix(100))

        header.mode = UInt64(entry.permissions & 0o7777)
        header.uid = UInt64(entry.uid)
        header.gid = UInt64(entry.gid)
        header.size = entry.size
        if entry.size > UstarHeader.octalLimit(width: 12) { pax.add("size", String(entry.size)) }
        if header.uid > UstarHeader.octalLimit(width: 8) { pax.add("uid", String(entry.uid)) }
        if header.gid > UstarHeader.octalLimit(width: 8) { pax.add("gid", String(entry.gid)) }

        let mtimeFits = entry.mtime.seconds >= 0 && UInt64(entry.mtime.seconds) <= UstarHeader.octalLimit(width: 12)
        header.mtime = mtimeFits ? UInt64(entry.mtime.seconds) : (entry.mtime.seconds < 0 ? 0 : UstarHeader.octalLimit(width: 12))
        if !mtimeFits || entry.mtime.nanoseconds != 0 { pax.add("mtime", PaxRecords.time(entry.mtime)) }
        if options.includeAccessAndChangeTimes {
            if let atime = entry.atime { pax.add("atime", PaxRecords.time(atime)) }
            if let ctime = entry.ctime { pax.add("ctime", PaxRecords.time(ctime)) }
        }
        if header.devMajor > UstarHeader.octalLimit(width: 8) { pax.add("SCHILY.devmajor", String(header.devMajor)) }
        if header.devMinor > UstarHeader.octalLimit(width: 8) { pax.add("SCHILY.devminor", String(header.devMinor)) }

        for xattr in entry.xattrs {
            let key = xattr.name.utf8
            guard !key.isEmpty, !key.contains(0x3D), !key.contains(0), !key.contains(0x0A) else {
                report(entry, "extended attribute name \(xattr.name.debugDescription) cannot be a PAX key; not written")
                continue
            }
            pax.add("SCHILY.xattr." + xattr.name, xattr.value)
        }

        if !pax.isEmpty {
            var x = UstarHeader()
            x.typeFlag = .paxExtended
            x.name = paxHeaderName(for: name)
            x.mode = 0o644
            x.size = UInt64(pax.bytes.count)
            try emit(x.encode())
            try emit(pax.bytes)
            try pad(UInt64(pax.bytes.count))
        }
        try emit(header.encode())
        memberCount += 1
    }

    /// "./PaxHeaders/<last component>", ASCII only, at most 100 bytes (as GNU tar names them).
    private func paxHeaderName(for name: [UInt8]) -> [UInt8] {
        var trimmed = name
        while trimmed.count > 2, trimmed.last == 0x2F { trimmed.removeLast() }
        let base = trimmed.split(separator: 0x2F).last.map(Array.init) ?? []
        let safe = base.map { $0 >= 0x20 && $0 < 0x7F ? $0 : 0x5F }
        let prefix = Array("./PaxHeaders/".utf8)
        return Array((prefix + safe).prefix(100))
    }

    private func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        String(validating: bytes, as: UTF8.self) != nil
    }

    private func report(_ entry: TarEntry, _ message: String) {
        problems.append(ArchiveProblem(path: entry.displayPath, message: message))
    }

    // MARK: - Output

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        try sink.write(bytes)
        bytesWritten += UInt64(bytes.count)
    }

    private func emit(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try emit($0) }
    }

    private func emitZeros(_ count: UInt64) throws {
        let zeros: UnsafeMutableRawBufferPointer
        if let z = zeroBuffer {
            zeros = z
        } else {
            zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: min(buffer.count, 1 << 20), alignment: 16)
            zeros.initializeMemory(as: UInt8.self, repeating: 0)
            zeroBuffer = zeros
        }
        var left = count
        while left > 0 {
            let n = Int(min(left, UInt64(zeros.count)))
            try emit(UnsafeRawBufferPointer(rebasing: zeros[0..<n]))
            left -= UInt64(n)
        }
    }

    /// Zeros up to the next 512-byte boundary after `size` content bytes.
    private func pad(_ size: UInt64) throws {
        let rest = Int(size % UInt64(UstarHeader.blockSize))
        if rest != 0 { try emitZeros(UInt64(UstarHeader.blockSize - rest)) }
    }
}

extension TarWriter {
    /// What `appendMember` wrote.
    public enum MemberKind: Equatable, Sendable {
        case hardlink, file, other
    }

    /// Writes one filesystem entry: a link member ('1') naming `hardlinkTarget` when given; a
    /// regular file streamed from `reader` (zeros, listed in `problems`, when it cannot be
    /// opened, so that hardlinks to it stay valid); anything else as it is. The one way the
    /// extract, assemble and export commands turn entries into members.
    @discardableResult
    public func appendMember(_ entry: TarEntry, inode: UInt64, reader: (any FileSystemReader)?,
                             hardlinkTarget: [UInt8]?) throws -> MemberKind {
        var entry = entry
        if let target = hardlinkTarget {
            entry.kind = .hardlink(target: target)
            entry.size = 0
            try append(entry)
            return .hardlink
        }
        guard case .regular = entry.kind else {
            try append(entry)
            return .other
        }
        guard entry.size > 0 else {
            try append(entry)
            return .file
        }
        let contents: any FileContents
        do {
            guard let reader else { throw FWError(.notFound, "no filesystem holds it") }
            contents = try reader.openFile(inode)
        } catch {
            let message = FWError(error).message
            report(entry, "cannot open (\(message)); written as \(entry.size) zero bytes")
            contents = ZeroContents(size: entry.size)
        }
        try append(entry, contents: contents)
        for warning in contents.warnings { report(entry, warning) }
        return .file
    }
}


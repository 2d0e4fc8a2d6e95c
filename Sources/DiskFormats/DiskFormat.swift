#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import DiskImage
import Synchronization

/// How a disk image container is opened.
public struct DiskImageOptions: Sendable {
    /// Where qcow2 backing files are looked up when they are not next to the image
    /// (`--backing-dir`). Relative backing names are tried in the image's folder first.
    public var backingDirectory: String?
    /// The qcow2 internal snapshot to read (name or ID); nil reads the active state.
    public var snapshot: String?
    /// Folder for the sparse temporary file a non-seekable compressed image is decompressed into
    /// (default: $TMPDIR or /tmp). The file is unlinked as soon as it is created.
    public var temporaryDirectory: String?
    /// The most bytes a compressed wrapper may decompress to when it declares no size itself.
    public var maximumDecompressedSize: UInt64 = 16 << 40
    /// Free space kept on the temporary file's filesystem while decompressing.
    public var freeSpaceReserve: UInt64 = 64 << 20
    /// Called while a compressed wrapper is decompressed: bytes written so far, expected total.
    public var progress: (@Sendable (_ done: UInt64, _ total: UInt64?) -> Void)?

    public init(backingDirectory: String? = nil, snapshot: String? = nil, temporaryDirectory: String? = nil) {
        self.backingDirectory = backingDirectory
        self.snapshot = snapshot
        self.temporaryDirectory = temporaryDirectory
    }
}

/// A byte source that is the virtual disk of a container format (qcow2, VMDK, ...) or the
/// content of a compressed wrapper. `size` is the virtual size.
public protocol DiskContainerSource: ByteSource {
    /// "qcow2", "vmdk", "vhdx", "vpc", "vdi", or a wrapper chain such as "xz+qcow2".
    var format: String { get }
}

/// The container format of a source returned by `openDiskImage`: "raw" for a plain file.
public func diskImageFormat(of source: any ByteSource) -> String {
    (source as? any DiskContainerSource)?.format ?? "raw"
}

/// A source whose content was found inside a wrapper (xz, gz, zip, ...): the wrapper's name is
/// prepended to the inner format.
final class WrappedSource: DiskContainerSource {
    let inner: any ByteSource
    let wrapper: String
    /// Keeps the outer source (e.g. the temporary file) alive as long as the inner view.
    let keepAlive: [any ByteSource]
    var size: UInt64 { inner.size }
    var name: String { inner.name }
    var format: String { "\(wrapper)+\(diskImageFormat(of: inner))" }

    init(inner: any ByteSource, wrapper: String, keepAlive: [any ByteSource]) {
        self.inner = inner
        self.wrapper = wrapper
        self.keepAlive = keepAlive
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try inner.read(at: offset, into: buffer)
    }
}

/// Zero bytes (a VMDK ZERO extent, the part of a virtual disk past its backing file).
final class ZeroSource: ByteSource {
    let size: UInt64
    let name: String
    init(size: UInt64, name: String) {
        self.size = size
        self.name = name
    }
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size else { return 0 }
        let count = Int(min(UInt64(buffer.count), size - offset))
        zeroFill(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        return count
    }
}

/// Several sources one after the other (VMDK extents).
final class ConcatSource: DiskContainerSource {
    let parts: [(start: UInt64, source: any ByteSource)]
    let size: UInt64
    let name: String
    let format: String

    init(parts: [any ByteSource], name: String, format: String) throws {
        var start: UInt64 = 0
        var list: [(UInt64, any ByteSource)] = []
        for p in parts {
            list.append((start, p))
            let (end, overflow) = start.addingReportingOverflow(p.size)
            guard !overflow else { throw FWError(.corrupt, "extents add up to more than 2^64 bytes", disk: name) }
            start = end
        }
        self.parts = list
        self.size = start
        self.name = name
        self.format = format
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readInPieces(size: size, at: offset, into: buffer) { pos, rest in
            // Last part starting at or before pos.
            var lo = 0, hi = parts.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if parts[mid].start <= pos { lo = mid } else { hi = mid - 1 }
            }
            let part = parts[lo]
            let within = pos - part.start
            guard within < part.source.size else { return 0 }
            let n = Int(min(UInt64(rest.count), part.source.size - within))
            try part.source.readExactly(at: within, into: UnsafeMutableRawBufferPointer(rebasing: rest[0..<n]))
            return n
        }
    }
}

/// A bounded cache of decoded clusters, grains or tables, keyed by their host offset (or any
/// other unique number). Holds at most `capacity` entries; the oldest inserted goes first.
final class ClusterCache: Sendable {
    private struct State {
        var entries: [UInt64: [UInt8]] = [:]
        var order: [UInt64] = []
        var head = 0
    }
    private let state = Mutex(State())
    let capacity: Int

    /// `budget` bytes of `entrySize`-byte entries (at least 4 entries).
    init(entrySize: Int, budget: Int = 32 << 20) {
        capacity = max(4, budget / max(1, entrySize))
    }

    func get(_ key: UInt64) -> [UInt8]? {
        state.withLock { $0.entries[key] }
    }

    func put(_ key: UInt64, _ value: [UInt8]) {
        state.withLock { s in
            if s.entries.updateValue(value, forKey: key) != nil { return }
            if s.order.count < capacity {
                s.order.append(key)
            } else {
                s.entries[s.order[s.head]] = nil
                s.order[s.head] = key
                s.head = (s.head + 1) % capacity
            }
        }
    }

    /// The cached value, or `make()`'s result stored and returned.
    func value(_ key: UInt64, _ make: () throws -> [UInt8]) rethrows -> [UInt8] {
        if let v = get(key) { return v }
        let v = try make()
        put(key, v)
        return v
    }
}

/// A file descriptor read with pread (the unlinked temporary file of a decompressed wrapper).
final class DescriptorSource: ByteSource {
    let fd: Int32
    let size: UInt64
    let name: String

    init(fd: Int32, size: UInt64, name: String) {
        self.fd = fd
        self.size = size
        self.name = name
    }

    deinit { close(fd) }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size, buffer.count > 0 else { return 0 }
        let total = Int(min(UInt64(buffer.count), size - offset))
        return try preadFully(fd, at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<total]), name: name)
    }
}

extension ByteSource {
    /// Reads `count` bytes at `offset` (bounded by `maximumSingleRead`), naming `what` in errors.
    func record(at offset: UInt64, count: Int, _ what: String) throws -> ByteCursor {
        do {
            return ByteCursor(try bytes(at: offset, count: count), context: "\(what) at offset \(offset)")
        } catch var error as FWError {
            error.message = "\(what) at offset \(offset): \(error.message)"
            throw error.within(disk: name)
        }
    }

    /// Up to `count` bytes from `offset` (fewer at the end of the source).
    func prefix(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset < size else { return [] }
        let n = Int(min(UInt64(count), size - offset))
        return try bytes(at: offset, count: n)
    }
}

/// `a * b` or a `.corrupt` error naming `what`.
func checkedMultiply(_ a: UInt64, _ b: UInt64, _ what: String, disk: String) throws -> UInt64 {
    let (r, o) = a.multipliedReportingOverflow(by: b)
    guard !o else { throw FWError(.corrupt, "\(what) overflows (\(a) * \(b))", disk: disk) }
    return r
}

func checkedAdd(_ a: UInt64, _ b: UInt64, _ what: String, disk: String) throws -> UInt64 {
    let (r, o) = a.addingReportingOverflow(b)
    guard !o else { throw FWError(.corrupt, "\(what) overflows (\(a) + \(b))", disk: disk) }
    return r
}

/// Fills `buffer` with zeros.
func zeroFill(_ buffer: UnsafeMutableRawBufferPointer) {
    if let base = buffer.baseAddress, buffer.count > 0 { memset(base, 0, buffer.count) }
}

/// The folder part of a path ("." for a bare name).
func directoryOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}

/// The canonical path of an existing file (for loop detection), or the path itself.
func canonicalPath(_ path: String) -> String {
    guard let p = realpath(path, nil) else { return path }
    defer { free(p) }
    return String(cString: p)
}

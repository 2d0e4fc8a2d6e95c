#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Random-access, read-only bytes: a disk image, a partition of it, or a filesystem image in memory.
///
/// Readers never load a whole source; they read the ranges they need with `read(at:into:)`.
public protocol ByteSource: AnyObject, Sendable {
    /// Total length in bytes.
    var size: UInt64 { get }
    /// A human name for messages: the image path, or "disk.img partition 3".
    var name: String { get }
    /// Where the bytes are, for errors: the image, and the partition for a partition's bytes.
    /// Defaults to the name as the image.
    var place: FWError.Place { get }
    /// Reads up to `buffer.count` bytes at `offset`. Returns fewer only at the end of the source
    /// (0 when `offset >= size`). Throws on I/O errors.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// The largest single read a parser may request through `bytes(at:count:)`. Larger requests are a
/// sign of a corrupt length field, so they fail instead of allocating.
public let maximumSingleRead = 64 << 20

extension ByteSource {
    public var place: FWError.Place { FWError.Place(disk: name) }

    /// Reads exactly `count` bytes at `offset`, or throws `.corrupt` if the range is outside the
    /// source (the usual outcome of a bad on-disk offset or length).
    public func bytes(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard count >= 0, count <= maximumSingleRead else {
            throw FWError(.limitExceeded, "refusing a \(count)-byte read at offset \(offset)", at: place)
        }
        let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
        guard !overflow, end <= size else {
            throw FWError(.corrupt, "read of \(count) bytes at offset \(offset) is past the end (\(size) bytes)", at: place)
        }
        var result = [UInt8](repeating: 0, count: count)
        let got = try result.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        guard got == count else {
            throw FWError(.io, "short read: \(got) of \(count) bytes at offset \(offset)", at: place)
        }
        return result
    }

    /// Fills `buffer` completely from `offset`, or throws if the range is outside the source.
    public func readExactly(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(buffer.count))
        guard !overflow, end <= size else {
            throw FWError(.corrupt, "read of \(buffer.count) bytes at offset \(offset) is past the end (\(size) bytes)", at: place)
        }
        let got = try read(at: offset, into: buffer)
        guard got == buffer.count else {
            throw FWError(.io, "short read: \(got) of \(buffer.count) bytes at offset \(offset)", at: place)
        }
    }

    /// A view of `length` bytes starting at `offset`, clamped to nothing: the range must fit.
    public func slice(offset: UInt64, length: UInt64, name: String? = nil) throws -> SliceSource {
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= size else {
            throw FWError(.corrupt, "range \(offset)+\(length) is past the end (\(size) bytes)", at: self.place)
        }
        if let name { return SliceSource(base: self, offset: offset, length: length, place: FWError.Place(disk: name)) }
        var place = self.place
        if let partition = place.partition {
            place.partition = "\(partition)@\(offset)"
        } else {
            place = FWError.Place(disk: "\(self.name)@\(offset)")
        }
        return SliceSource(base: self, offset: offset, length: length, place: place)
    }

    /// A view of `length` bytes starting at `offset` that errors place at `place` (the image and
    /// the partition: "disk.img" + "partition 3 (rootfs)"); its name is "disk.img partition 3 (rootfs)".
    public func slice(offset: UInt64, length: UInt64, place: FWError.Place) throws -> SliceSource {
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= size else {
            throw FWError(.corrupt, "range \(offset)+\(length) is past the end (\(size) bytes)", at: self.place)
        }
        return SliceSource(base: self, offset: offset, length: length, place: place)
    }
}

/// A window onto another source: a partition (offset + length) of a disk.
public final class SliceSource: ByteSource {
    public let base: any ByteSource
    public let offset: UInt64
    public let size: UInt64
    public let place: FWError.Place
    public var name: String { place.description }

    init(base: any ByteSource, offset: UInt64, length: UInt64, place: FWError.Place) {
        self.base = base
        self.offset = offset
        self.size = length
        self.place = place
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size else { return 0 }
        let count = Int(min(UInt64(buffer.count), size - offset))
        return try base.read(at: self.offset + offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
    }
}

/// The read loop of a source made of pieces (extents, clusters, grains, blocks, cached chunks):
/// the request is clamped to `size`, then `piece(position, rest)` fills the start of `rest` (the
/// part of the buffer still to fill, for the bytes from `position` on) and returns how many
/// bytes it filled. A piece that fills nothing ends the read short. Returns the bytes read.
public func readInPieces(size: UInt64, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer,
                         _ piece: (_ position: UInt64, _ rest: UnsafeMutableRawBufferPointer) throws -> Int) rethrows -> Int {
    guard offset < size else { return 0 }
    let total = Int(min(UInt64(buffer.count), size - offset))
    var done = 0
    while done < total {
        let n = try piece(offset + UInt64(done), UnsafeMutableRawBufferPointer(rebasing: buffer[done..<total]))
        guard n > 0 else { break }
        done += n
    }
    return done
}

/// Bytes held in memory: tests, fuzzing, and small embedded images.
public final class MemorySource: ByteSource {
    public let bytes: [UInt8]
    public let name: String
    public var size: UInt64 { UInt64(bytes.count) }

    public init(_ bytes: [UInt8], name: String = "memory") {
        self.bytes = bytes
        self.name = name
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size else { return 0 }
        let start = Int(offset)
        let count = min(buffer.count, bytes.count - start)
        bytes.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + start, byteCount: count)
        }
        return count
    }
}

/// A raw image file or block device, read with `pread` (no shared file position, so one
/// `FileSource` can serve several readers and threads at once).
public final class FileSource: ByteSource {
    public let path: String
    public let name: String
    public let size: UInt64
    private let fd: Int32

    /// Opens `path` read-only. Errors name the path: missing file, a directory, an unreadable file.
    public init(path: String) throws {
        self.path = path
        self.name = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let err = errno
            throw FWError(err == ENOENT ? .notFound : .io, "cannot open: \(String(cString: strerror(err)))", disk: path)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let err = errno
            close(fd)
            throw FWError(.io, "cannot stat: \(String(cString: strerror(err)))", disk: path)
        }
        let kind = st.st_mode & S_IFMT
        if kind == S_IFDIR {
            close(fd)
            throw FWError(.invalidArgument, "is a directory, not a disk image", disk: path)
        }
        if kind == S_IFBLK {
            let end = lseek(fd, 0, SEEK_END)
            guard end >= 0 else {
                close(fd)
                throw FWError(.io, "cannot find the size of the block device", disk: path)
            }
            self.size = UInt64(end)
        } else if kind == S_IFREG {
            self.size = UInt64(st.st_size)
        } else {
            close(fd)
            throw FWError(.invalidArgument, "not a regular file or block device", disk: path)
        }
        self.fd = fd
    }

    deinit { close(fd) }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size, buffer.count > 0 else { return 0 }
        return try preadFully(fd, at: offset, into: buffer, name: name)
    }
}

/// Reads from `fd` at `offset` with pread until `buffer` is full or the file ends (EINTR
/// retried); returns the bytes read. Errors name `name` and the offset.
public func preadFully(_ fd: Int32, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, name: String) throws -> Int {
    guard let base = buffer.baseAddress else { return 0 }
    var done = 0
    while done < buffer.count {
        let n = pread(fd, base + done, buffer.count - done, off_t(offset) + off_t(done))
        if n < 0 {
            if errno == EINTR { continue }
            throw FWError(.io, "read error at offset \(offset + UInt64(done)): \(String(cString: strerror(errno)))", disk: name)
        }
        if n == 0 { break }
        done += n
    }
    return done
}

extension FWError.Place {
    /// Where a filesystem reader of `source` places its errors: the source's image and partition
    /// when it is a partition of an image, otherwise `name` (or the source's name) as the image.
    public init(source: any ByteSource, name: String?) {
        let place = source.place
        self = place.partition != nil ? place : FWError.Place(disk: name ?? source.name)
    }
}

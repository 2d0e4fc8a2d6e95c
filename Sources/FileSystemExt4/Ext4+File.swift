internal import CExt2fs
import DiskImage
import FileSystems
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One open regular file (or slow symlink), read sequentially.
///
/// Extent-mapped files are read from their extent tree, walked leaf by leaf as the position
/// advances (memory stays one extent-tree path deep): mapped runs are read from the source in
/// large `pread`s, holes and unwritten (uninitialised) extents are zeros without any disk read,
/// so a 1 GiB sparse file costs two block reads. Block-mapped (ext2/ext3) and inline-data files
/// go through libext2fs's `ext2fs_file_read`, which also returns zeros for holes.
final class Ext4File: FileContents {
    private let reader: Ext4Reader   // keeps the filesystem open while the file is
    private let inode: UInt64
    let size: UInt64
    private var position: UInt64 = 0
    private var mapping: Mapping

    private enum Mapping {
        case extents(ExtentCursor)
        case library(ext2_file_t)
        case closed
    }

    init(reader: Ext4Reader, inode: UInt64, raw: Ext4Inode) throws {
        self.reader = reader
        self.inode = inode
        let fs = try reader.handle()
        let ino = try reader.inodeNumber(inode)
        if raw.flags & Ext4Inode.extentsFlag != 0, !raw.hasInlineData {
            size = raw.size(largeDirectories: false)
            var handle: ext2_extent_handle_t?
            try reader.check(ext2fs_extent_open2(fs, ino, nil, &handle), "cannot open the extent tree of inode \(inode)")
            guard let handle else { throw FWError(.corrupt, "no extent tree for inode \(inode)", at: reader.place) }
            mapping = .extents(ExtentCursor(handle: handle))
        } else {
            var f: ext2_file_t?
            try reader.check(ext2fs_file_open(fs, ino, 0, &f), "cannot open file inode \(inode)")
            guard let f else { throw FWError(.corrupt, "no file handle for inode \(inode)", at: reader.place) }
            mapping = .library(f)
            var length: UInt64 = 0
            try reader.check(ext2fs_file_get_lsize(f, &length), "cannot size file inode \(inode)")
            size = length
        }
        // A size past what the mapping can address is a damaged i_size, not a huge sparse file:
        // refuse it rather than stream terabytes of zeros.
        let limit = Self.maximumSize(blockSize: UInt64(reader.blockSize), extents: raw.flags & Ext4Inode.extentsFlag != 0)
        guard size <= limit else {
            throw FWError(.corrupt, "file inode \(inode) claims \(size) bytes, more than its block mapping can address (\(limit))",
                          at: reader.place)
        }
    }

    /// The largest size a file can have: 2^32 logical blocks with extents; 12 direct, single,
    /// double and triple indirect blocks with a block map.
    static func maximumSize(blockSize: UInt64, extents: Bool) -> UInt64 {
        if extents { return (UInt64(1) << 32) * blockSize }
        let n = blockSize / 4
        let blocks = 12 + n + n * n + n * n * n
        let (bytes, overflow) = blocks.multipliedReportingOverflow(by: blockSize)
        return overflow ? UInt64.max : bytes
    }

    deinit {
        switch mapping {
        case .extents(let cursor): ext2fs_extent_free(cursor.handle)
        case .library(let file): _ = ext2fs_file_close(file)
        case .closed: break
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, position < size else { return 0 }
        let wanted = min(buffer.count, Ext4Reader.readChunk, Int(clamping: size - position))
        let got: Int
        switch mapping {
        case .extents(let cursor):
            got = try readExtents(cursor, into: UnsafeMutableRawBufferPointer(start: base, count: wanted))
        case .library(let file):
            var n: UInt32 = 0
            try reader.check(ext2fs_file_read(file, base, UInt32(wanted), &n),
                             "cannot read file inode \(inode) at offset \(position)")
            got = Int(n)
        case .closed:
            got = 0
        }
        if got == 0 {
            throw FWError(.corrupt, "file inode \(inode) ends at \(position), its size says \(size)", at: reader.place)
        }
        position += UInt64(got)
        return got
    }

    /// Fills `buffer` (non-empty, within the file) from the extent at or after `position`.
    private func readExtents(_ cursor: ExtentCursor, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let blockSize = UInt64(reader.blockSize)
        let logical = position / blockSize
        let next = try cursor.extent(atOrAfter: logical, reader: reader, inode: inode)
        guard let next, logical >= next.logical else {
            // A hole: up to the next extent, or to the end of the file.
            let holeEnd = next.map { $0.logical.multipliedReportingOverflow(by: blockSize).partialValue } ?? size
            let count = Int(min(UInt64(buffer.count), holeEnd - position))
            zero(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
            return count
        }
        let extentEnd = (next.logical + UInt64(next.length)) * blockSize   // bounded: checked in ExtentCursor
        let count = Int(min(UInt64(buffer.count), extentEnd - position))
        let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
        if next.unwritten {
            zero(part)
            return count
        }
        let physical = next.physical * blockSize + (position - next.logical * blockSize)
        do {
            try reader.source.readExactly(at: physical, into: part)
        } catch let error as FWError {
            var e = error
            e.message = "cannot read file inode \(inode) at offset \(position): \(error.message)"
            throw e.within(reader.place)
        }
        return count
    }
}

/// Zero-fills a buffer with memset (a byte loop in unoptimised builds is far slower).
func zero(_ buffer: UnsafeMutableRawBufferPointer) {
    guard let base = buffer.baseAddress else { return }
    memset(base, 0, buffer.count)
}

/// One leaf extent: `length` blocks from logical block `logical` stored at `physical`.
struct Ext4Extent {
    var logical: UInt64
    var physical: UInt64
    var length: UInt32
    var unwritten: Bool
}

/// Steps through the leaf extents of one inode in logical order, checking each against the
/// filesystem size and its predecessor (a corrupt tree cannot make reads go backwards or loop).
final class ExtentCursor {
    let handle: ext2_extent_handle_t
    private var current: Ext4Extent?
    private var started = false
    private var finished = false
    /// Logical block where the previous leaf ended.
    private var previousEnd: UInt64 = 0

    init(handle: ext2_extent_handle_t) {
        self.handle = handle
    }

    /// The first extent that ends after `logical` (it may start after it: a hole first), or
    /// nil when the rest of the file is a hole.
    func extent(atOrAfter logical: UInt64, reader: Ext4Reader, inode: UInt64) throws -> Ext4Extent? {
        while true {
            if let current, current.logical + UInt64(current.length) > logical { return current }
            if finished { return nil }
            current = try nextLeaf(reader: reader, inode: inode)
            if current == nil { finished = true }
        }
    }

    private func nextLeaf(reader: Ext4Reader, inode: UInt64) throws -> Ext4Extent? {
        var raw = ext2fs_extent()
        while true {
            let op = started ? EXT2_EXTENT_NEXT_LEAF : EXT2_EXTENT_ROOT
            started = true
            let code = ext2fs_extent_get(handle, Int32(op), &raw)
            if code == errcode_t(EXT2_ET_EXTENT_NO_NEXT) { return nil }
            try reader.check(code, "cannot read the extent tree of inode \(inode)")
            // The root of a deeper tree is an index entry; step on to its first leaf.
            if raw.e_flags & UInt32(EXT2_EXTENT_FLAGS_LEAF) == 0 { continue }
            if raw.e_flags & UInt32(EXT2_EXTENT_FLAGS_SECOND_VISIT) != 0 { continue }
            break
        }
        let extent = Ext4Extent(logical: raw.e_lblk, physical: raw.e_pblk, length: raw.e_len,
                                unwritten: raw.e_flags & UInt32(EXT2_EXTENT_FLAGS_UNINIT) != 0)
        let (logicalEnd, o1) = extent.logical.addingReportingOverflow(UInt64(extent.length))
        let (physicalEnd, o2) = extent.physical.addingReportingOverflow(UInt64(extent.length))
        let (_, o3) = logicalEnd.multipliedReportingOverflow(by: UInt64(reader.blockSize))
        guard extent.length > 0, !o1, !o2, !o3, extent.logical >= previousEnd,
              extent.unwritten || (extent.physical > 0 && physicalEnd <= reader.blocksCount) else {
            throw FWError(.corrupt, "inode \(inode): extent \(extent.logical)+\(extent.length) -> block \(extent.physical) is out of order or outside the \(reader.blocksCount)-block filesystem",
                          at: reader.place)
        }
        previousEnd = logicalEnd
        return extent
    }
}

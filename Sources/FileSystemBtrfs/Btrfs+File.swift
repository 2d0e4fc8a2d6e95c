import Codecs
import DiskImage
import FileSystems

extension Btrfs {
    /// One EXTENT_DATA item (`struct btrfs_file_extent_item`): 0 `generation`, 8 `ram_bytes`,
    /// 16 `compression`, 17 `encryption`, 18 `other_encoding`, 20 `type`; inline data from 21;
    /// else 21 `disk_bytenr`, 29 `disk_num_bytes`, 37 `offset`, 45 `num_bytes`.
    struct FileExtent {
        enum Kind {
            /// Data stored in the item (decoded when compressed).
            case inline([UInt8])
            /// Bytes `offset` on of the (decoded) extent at `diskBytenr`; 0 is a hole.
            case regular(diskBytenr: UInt64, diskBytes: UInt64, offset: UInt64, ramBytes: UInt64, compression: UInt8)
            /// Allocated, never written: reads as zeros.
            case prealloc
        }

        var fileOffset: UInt64
        var length: UInt64
        var kind: Kind

        static let maximumCompressedExtent: UInt64 = 1 << 20

        init(key: Key, _ c: ByteCursor, nodeSize: Int, decode: (UInt8, [UInt8], Int) throws -> [UInt8]) throws {
            fileOffset = key.offset
            let ramBytes = try c.u64le(at: 8)
            let compression = try c.u8(at: 16)
            guard try c.u8(at: 17) == 0, try c.u16le(at: 18) == 0 else {
                throw FWError.unsupported("btrfs encrypted or otherwise encoded extents are not read")
            }
            switch try c.u8(at: 20) {
            case 0:
                let stored = Array(c.bytes[21...])
                if compression == 0 {
                    kind = .inline(stored)
                    length = UInt64(stored.count)
                } else {
                    guard ramBytes <= UInt64(nodeSize) else {
                        throw FWError.corrupt("btrfs inline extent claims \(ramBytes) decompressed bytes")
                    }
                    let data = try decode(compression, stored, Int(ramBytes))
                    kind = .inline(data)
                    length = UInt64(data.count)
                }
            case let type where type == 1 || type == 2:
                let bytenr = try c.u64le(at: 21)
                let diskBytes = try c.u64le(at: 29)
                let offset = try c.u64le(at: 37)
                length = try c.u64le(at: 45)
                if type == 2 {
                    kind = .prealloc
                } else {
                    if compression != 0, bytenr != 0 {
                        guard diskBytes <= Self.maximumCompressedExtent, ramBytes <= Self.maximumCompressedExtent else {
                            throw FWError.corrupt("btrfs compressed extent of \(diskBytes) bytes (\(ramBytes) decoded) is over 1 MiB")
                        }
                        guard offset <= ramBytes, length <= ramBytes - offset else {
                            throw FWError.corrupt("btrfs compressed extent: range \(offset)+\(length) is outside its \(ramBytes) bytes")
                        }
                    }
                    kind = .regular(diskBytenr: bytenr, diskBytes: diskBytes, offset: offset, ramBytes: ramBytes, compression: compression)
                }
            case let type:
                throw FWError.corrupt("btrfs file extent of unknown type \(type)")
            }
        }
    }

    /// Decodes one compressed extent (`compression`: 1 zlib, 2 LZO, 3 zstd) into at most
    /// `capacity` bytes; a shorter result is padded with zeros to `capacity`, as the kernel fills
    /// the rest of the range it decompresses into.
    static func decompress(_ compression: UInt8, _ input: [UInt8], capacity: Int, sectorSize: Int) throws -> [UInt8] {
        var output: [UInt8]
        switch compression {
        case 1:
            output = try Zlib(allowsTrailingData: true).decompress(input, maximumOutput: capacity)
        case 2:
            output = try lzo(input, capacity: capacity, sectorSize: sectorSize)
        case 3:
            output = try Zstd(firstFrameOnly: true).decompress(input, maximumOutput: capacity)
        default:
            throw FWError.unsupported("btrfs compression type \(compression) is unknown")
        }
        if output.count < capacity { output += [UInt8](repeating: 0, count: capacity - output.count) }
        return output
    }

    /// btrfs's LZO framing (`fs/btrfs/lzo.c`): le32 total length (including itself), then
    /// segments of le32 length plus LZO1X data, each decoding to at most a sector; a segment
    /// header never crosses a sector boundary (the bytes left before one are padding).
    static func lzo(_ input: [UInt8], capacity: Int, sectorSize: Int) throws -> [UInt8] {
        let c = ByteCursor(input, context: "btrfs lzo extent")
        let total = Int(try c.u32le(at: 0))
        guard total >= 4, total <= input.count else {
            throw FWError.corrupt("btrfs lzo extent: total length \(total) outside its \(input.count) bytes")
        }
        let worst = sectorSize + sectorSize / 16 + 64 + 3
        var output: [UInt8] = []
        var position = 4
        let codec = LZO()
        while position < total, output.count < capacity {
            let left = sectorSize - position % sectorSize
            if left < 4 { position += left; continue }
            let length = Int(try c.u32le(at: position))
            position += 4
            guard length > 0, length <= worst, length <= total - position else {
                throw FWError.corrupt("btrfs lzo extent: segment of \(length) bytes at \(position - 4) is invalid")
            }
            let segment = try codec.decompress(Array(input[position..<(position + length)]), maximumOutput: min(sectorSize, capacity - output.count))
            output += segment
            position += length
        }
        return output
    }
}

/// Sequential reads of one regular file (or symlink): the EXTENT_DATA items from offset 0 on,
/// fetched a batch at a time; gaps between extents and the part past the last one read as
/// zeros (holes, with or without NO_HOLES).
final class BtrfsFile: FileContents {
    let reader: BtrfsReader
    let tree: Btrfs.TreeRoot
    let object: UInt64
    let size: UInt64
    private var position: UInt64 = 0
    private var pending: [Btrfs.FileExtent] = []
    private var nextSearch: UInt64 = 0
    private var exhausted = false
    private var previousEnd: UInt64 = 0
    /// The last decoded compressed extent (its disk address and bytes).
    private var decoded: (bytenr: UInt64, bytes: [UInt8])?
    static let batch = 128

    /// Checks data against the csum tree as it is read (nil: NODATASUM, no csum tree, or
    /// checksums not verified).
    private let verifier: Btrfs.DataVerifier?

    init(reader: BtrfsReader, tree: Btrfs.TreeRoot, object: UInt64, size: UInt64, verifier: Btrfs.DataVerifier? = nil) {
        self.reader = reader
        self.tree = tree
        self.object = object
        self.size = size
        self.verifier = verifier
    }

    /// Data checksum mismatches met so far (the bytes are given as stored).
    var warnings: [String] {
        guard let verifier, verifier.mismatchCount > 0 else { return [] }
        let more = verifier.mismatchCount - verifier.mismatches.count
        return ["btrfs data checksum (\(reader.checksumType.name)) mismatch in every copy of "
            + verifier.mismatches.joined(separator: ", ") + (more > 0 ? " and \(more) more sector(s)" : "")
            + "; the bytes are given as stored"]
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try reader.place.placing {
            var done = 0
            while done < buffer.count, position < size {
                let n = try readPiece(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
                done += n
                position += UInt64(n)
            }
            return done
        }
    }

    /// Reads from `position` up to the end of the extent or hole holding it.
    private func readPiece(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let limit = UInt64(buffer.count)
        while let first = pending.first, first.fileOffset.addingReportingOverflow(first.length).partialValue <= position {
            pending.removeFirst()
        }
        if pending.isEmpty, !exhausted { try fetch() }
        guard let extent = pending.first else {
            return zero(buffer, Int(min(limit, size - position)))
        }
        if extent.fileOffset > position {
            return zero(buffer, Int(min(limit, extent.fileOffset - position, size - position)))
        }
        let within = position - extent.fileOffset
        let count = Int(min(limit, extent.length - within, size - position))
        switch extent.kind {
        case .inline(let data):
            data.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(within)..<(Int(within) + count)])) }
            return count
        case .prealloc:
            return zero(buffer, count)
        case let .regular(bytenr, diskBytes, offset, ramBytes, compression):
            if bytenr == 0 { return zero(buffer, count) }
            if compression == 0 {
                let (start, o1) = bytenr.addingReportingOverflow(offset)
                let (logical, o2) = start.addingReportingOverflow(within)
                guard !o1, !o2 else { throw FWError.corrupt("btrfs inode \(object): extent address overflows") }
                return try readLogical(logical, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
            }
            if decoded?.bytenr != bytenr {
                let input: [UInt8]
                if let verifier {
                    input = try verifier.read(bytenr, count: Int(diskBytes), fileOffset: Int64(extent.fileOffset), compressed: true)
                } else {
                    guard let bytes = try reader.trees.volume.bytes(bytenr, count: Int(diskBytes)) else {
                        throw FWError.corrupt("btrfs inode \(object): extent at \(bytenr) has no present copy")
                    }
                    input = bytes
                }
                decoded = (bytenr, try Btrfs.decompress(compression, input, capacity: Int(ramBytes), sectorSize: Int(reader.superBlock.sectorSize)))
            }
            let start = Int(offset + within)
            decoded?.bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<(start + count)])) }
            return count
        }
    }

    /// Reads uncompressed data at `logical` (the file's `position`); with a verifier, the whole
    /// sectors around it are read and checked (at most 1 MiB at a time).
    private func readLogical(_ logical: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let verifier else {
            guard let n = try reader.trees.volume.read(logical, into: buffer) else {
                throw FWError.corrupt("btrfs inode \(object): data at \(logical) has no present copy")
            }
            return n
        }
        let sector = UInt64(reader.superBlock.sectorSize)
        let n = min(buffer.count, 1 << 20)
        let start = logical - logical % sector
        let (end, overflow) = logical.addingReportingOverflow(UInt64(n))
        guard !overflow, end <= UInt64.max - sector else { throw FWError.corrupt("btrfs inode \(object): data address overflows") }
        let alignedEnd = (end + sector - 1) / sector * sector
        let bytes = try verifier.read(start, count: Int(alignedEnd - start), fileOffset: Int64(position) - Int64(logical - start))
        let skip = Int(logical - start)
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[skip..<(skip + n)])) }
        return n
    }

    private func zero(_ buffer: UnsafeMutableRawBufferPointer, _ count: Int) -> Int {
        UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]).initializeMemory(as: UInt8.self, repeating: 0)
        return count
    }

    /// The next batch of extents in file-offset order; overlapping extents are corrupt.
    private func fetch() throws {
        let sector = Int(reader.superBlock.sectorSize)
        let nodeSize = Int(reader.superBlock.nodeSize)
        let items = try reader.trees.items(in: tree, objectID: object, type: .extentData, from: nextSearch, limit: Self.batch)
        if items.count < Self.batch { exhausted = true }
        for (key, item) in items {
            let extent = try Btrfs.FileExtent(key: key, item, nodeSize: nodeSize) { compression, input, capacity in
                try Btrfs.decompress(compression, input, capacity: capacity, sectorSize: sector)
            }
            guard extent.fileOffset >= previousEnd else {
                throw FWError.corrupt("btrfs inode \(object): extent at file offset \(extent.fileOffset) overlaps the one before")
            }
            let (end, overflow) = extent.fileOffset.addingReportingOverflow(extent.length)
            guard !overflow else { throw FWError.corrupt("btrfs inode \(object): extent length overflows") }
            previousEnd = end
            pending.append(extent)
            nextSearch = key.offset &+ 1
            if end >= size || nextSearch == 0 { exhausted = true; break }
        }
    }
}

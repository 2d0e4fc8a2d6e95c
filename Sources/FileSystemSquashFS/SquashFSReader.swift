import Codecs
import DiskImage
import FileSystems

/// A squashfs 4.0 filesystem read in userspace, lazily: opening reads the superblock, the
/// compressor options and the id table; inodes, directories, fragments and xattrs are read on
/// demand through a bounded cache of decompressed metadata blocks.
///
/// Inode handles (`rootInode`, `DirectoryEntry.inode`, `Metadata.inode`) are squashfs inode
/// references: the inode's metadata block offset from the inode table start (bits 16...47) and
/// its offset in that block (bits 0...15). Hardlinks share one inode, hence one reference.
public final class SquashFSReader: FileSystemReader {
    public let formatName = "squashfs"
    public let sourceName: String
    /// The image and partition its errors name.
    public let place: FWError.Place
    public let rootInode: UInt64
    /// Data block size in bytes.
    public let blockSize: UInt32
    /// The compressor of every compressed block.
    public let compression: SquashFS.Compression
    /// Number of inodes the superblock declares.
    public let inodeCount: UInt32

    let source: any ByteSource
    let superBlock: SquashFS.SuperBlock
    let store: SquashFS.MetadataStore
    let decompressor: any Decompressor
    /// uid/gid values, indexed by the inodes' uid and guid fields.
    let ids: [UInt32]
    /// Where the directory table ends (the next table's start).
    let directoryTableEnd: UInt64
    let xattrTable: SquashFS.XattrIDTableHeader?
    /// The one fragment block kept decompressed: its address and bytes.
    var fragmentCache: (address: UInt64, data: [UInt8])?

    /// Opens the squashfs image in `source`; `name` is used in messages ("disk.img partition 3").
    public init(source: any ByteSource, name: String) throws {
        self.source = source
        self.sourceName = name
        self.place = FWError.Place(source: source, name: name)
        do {
            guard source.size >= UInt64(SquashFS.SuperBlock.size) else {
                throw FWError.corrupt("too small for a squashfs superblock (\(source.size) bytes)")
            }
            let sb = try SquashFS.SuperBlock(source.bytes(at: 0, count: SquashFS.SuperBlock.size))
            compression = try sb.validate(sourceSize: source.size)
            superBlock = sb
            blockSize = sb.blockSize
            inodeCount = sb.inodeCount
            decompressor = compression.decompressor()
            store = SquashFS.MetadataStore(source: source, decompressor: decompressor, bytesUsed: sb.bytesUsed)
            guard sb.rootInode >> 48 == 0 else {
                throw FWError.corrupt("squashfs root inode reference 0x\(String(sb.rootInode, radix: 16)) is invalid")
            }
            rootInode = sb.rootInode

            if sb.flags.contains(.compressorOptions) {
                let block = try store.block(at: UInt64(SquashFS.SuperBlock.size), limit: sb.inodeTableStart, what: "squashfs compressor options")
                _ = try SquashFS.CompressorOptions(block.data, compression: compression)
            }

            // The directory table ends where the next table starts.
            let later = [sb.fragmentTableStart, sb.lookupTableStart, sb.idTableStart, sb.xattrIDTableStart, sb.bytesUsed]
                .filter { $0 != SquashFS.invalidTable && $0 > sb.directoryTableStart }
            directoryTableEnd = later.min() ?? sb.bytesUsed

            ids = try Self.readTable(store: store, source: source, indexAt: sb.idTableStart, entries: Int(sb.idCount),
                                     entrySize: 4, what: "squashfs id table").map {
                try ByteCursor($0, context: "squashfs id").u32le(at: 0)
            }

            if sb.xattrIDTableStart != SquashFS.invalidTable, !sb.flags.contains(.noXattrs) {
                let header = try SquashFS.XattrIDTableHeader(source.bytes(at: sb.xattrIDTableStart, count: SquashFS.XattrIDTableHeader.size))
                guard header.tableStart < sb.xattrIDTableStart else {
                    throw FWError.corrupt("squashfs xattr table start \(header.tableStart) is not before its id table at \(sb.xattrIDTableStart)")
                }
                xattrTable = header
            } else {
                xattrTable = nil
            }
        } catch let error as FWError {
            throw error.within(place)
        }
    }

    // MARK: - Tables indexed by u64 metadata block addresses (ids, fragments, xattr ids)

    /// Reads entry `index` of a table of `entrySize`-byte records stored in metadata blocks whose
    /// addresses are listed (u64 each) at `indexAt`.
    static func tableEntry(store: SquashFS.MetadataStore, source: any ByteSource, indexAt: UInt64, index: Int,
                           entrySize: Int, what: String) throws -> [UInt8] {
        let byteOffset = index.multipliedReportingOverflow(by: entrySize)
        guard !byteOffset.overflow else { throw FWError.corrupt("\(what): entry \(index) is out of range") }
        let blockNumber = byteOffset.partialValue / SquashFS.metadataBlockSize
        let (pointerAddress, overflow) = indexAt.addingReportingOverflow(UInt64(blockNumber) * 8)
        guard !overflow, pointerAddress < store.bytesUsed else {
            throw FWError.corrupt("\(what): index of block \(blockNumber) is past the end of the image")
        }
        let address = try ByteCursor(source.bytes(at: pointerAddress, count: 8), context: "\(what) index").u64le(at: 0)
        var position = SquashFS.MetadataPosition(block: address, offset: byteOffset.partialValue % SquashFS.metadataBlockSize)
        return try store.read(entrySize, at: &position, limit: indexAt, what: what)
    }

    /// Reads a whole small table (the id table: at most 65535 entries).
    static func readTable(store: SquashFS.MetadataStore, source: any ByteSource, indexAt: UInt64, entries: Int,
                          entrySize: Int, what: String) throws -> [[UInt8]] {
        try (0..<entries).map {
            try tableEntry(store: store, source: source, indexAt: indexAt, index: $0, entrySize: entrySize, what: what)
        }
    }

    // MARK: - Inodes

    func inode(_ reference: UInt64) throws -> SquashFS.Inode {
        let position = try SquashFS.MetadataStore.position(reference: reference, tableStart: superBlock.inodeTableStart,
                                                           what: "squashfs inode 0x\(String(reference, radix: 16))")
        do {
            return try SquashFS.Inode(store: store, at: position, limit: superBlock.directoryTableStart)
        } catch let error as FWError {
            throw FWError(error.code, "inode 0x\(String(reference, radix: 16)): \(error.message)", at: place, cause: error)
        }
    }

    func id(_ index: UInt16, _ what: String) throws -> UInt32 {
        guard Int(index) < ids.count else {
            throw FWError.corrupt("squashfs \(what) index \(index) is outside the \(ids.count)-entry id table")
        }
        return ids[Int(index)]
    }

    public func metadata(of inode: UInt64) throws -> Metadata {
        do {
            let ino = try self.inode(inode)
            let type = ino.header.type.fileType
            return Metadata(
                type: type,
                permissions: ino.header.mode & 0o7777,
                uid: try id(ino.header.uidIndex, "uid"),
                gid: try id(ino.header.gidIndex, "gid"),
                size: type == .directory ? 0 : ino.size,
                mtime: Timestamp(seconds: Int64(ino.header.mtime)),
                linkCount: ino.linkCount,
                inode: inode,
                symlinkTarget: ino.symlinkTarget,
                device: (type == .characterDevice || type == .blockDevice) ? DeviceNumber(linux: UInt64(ino.rdev)) : nil,
                xattrs: try xattrs(index: ino.xattrIndex))
        } catch let error as FWError {
            throw error.within(place)
        }
    }

    // MARK: - Directories

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        do {
            let ino = try self.inode(inode)
            guard ino.header.type.fileType == .directory else {
                throw FWError(.invalidArgument, "inode 0x\(String(inode, radix: 16)) is not a directory")
            }
            // file_size counts 3 bytes more than the listing (for "." and ".."); 3 or less is empty.
            guard ino.size > 3 else { return [] }
            let length = ino.size - 3
            let what = "squashfs directory inode 0x\(String(inode, radix: 16))"
            var position = SquashFS.MetadataPosition(block: superBlock.directoryTableStart + UInt64(ino.directoryBlock),
                                                     offset: Int(ino.directoryOffset))
            guard position.offset < SquashFS.metadataBlockSize else {
                throw FWError.corrupt("\(what): listing offset \(position.offset) is outside a metadata block")
            }
            var consumed: UInt64 = 0
            var entries: [DirectoryEntry] = []
            func read(_ count: Int) throws -> [UInt8] {
                guard UInt64(count) <= length - consumed else {
                    throw FWError.corrupt("\(what): listing runs past its stored size \(length)")
                }
                consumed += UInt64(count)
                return try store.read(count, at: &position, limit: directoryTableEnd, what: what)
            }
            while consumed < length {
                let header = try SquashFS.DirectoryHeader(read(SquashFS.DirectoryHeader.size))
                guard header.count < UInt32(SquashFS.maximumDirectoryHeaderCount) else {
                    throw FWError.corrupt("\(what): directory header announces \(UInt64(header.count) + 1) entries (at most \(SquashFS.maximumDirectoryHeaderCount))")
                }
                for _ in 0...header.count {
                    let record = try SquashFS.DirectoryEntryRecord(read(SquashFS.DirectoryEntryRecord.size))
                    let nameLength = Int(record.nameSize) + 1
                    guard nameLength <= SquashFS.maximumNameLength else {
                        throw FWError.corrupt("\(what): entry name of \(nameLength) bytes (at most \(SquashFS.maximumNameLength))")
                    }
                    let name = try read(nameLength)
                    guard Int(record.offset) < SquashFS.metadataBlockSize else {
                        throw FWError.corrupt("\(what): entry \(String(decoding: name, as: UTF8.self)) has an inode offset \(record.offset) outside a metadata block")
                    }
                    guard entries.count < WalkLimits.maximumDirectoryEntries else {
                        throw FWError(.limitExceeded, "\(what): more than \(WalkLimits.maximumDirectoryEntries) entries")
                    }
                    entries.append(DirectoryEntry(name: name, inode: UInt64(header.startBlock) << 16 | UInt64(record.offset)))
                }
            }
            return entries
        } catch let error as FWError {
            throw error.within(place)
        }
    }

    // MARK: - Extended attributes

    func xattrs(index: UInt32) throws -> [ExtendedAttribute] {
        guard index != SquashFS.invalidXattr else { return [] }
        guard let table = xattrTable else {
            throw FWError.corrupt("squashfs inode has xattr index \(index) but the image has no xattr table")
        }
        guard index < table.count else {
            throw FWError.corrupt("squashfs xattr index \(index) is outside the \(table.count)-entry xattr id table")
        }
        let what = "squashfs xattrs"
        let entry = try SquashFS.XattrID(Self.tableEntry(store: store, source: source,
                                                         indexAt: superBlock.xattrIDTableStart + UInt64(SquashFS.XattrIDTableHeader.size),
                                                         index: Int(index), entrySize: SquashFS.XattrID.size, what: "squashfs xattr id table"))
        // Each pair takes at least 8 bytes (two 4-byte headers) plus a one-byte name.
        guard UInt64(entry.count) * 9 <= UInt64(entry.size), entry.size <= 1 << 20 else {
            throw FWError.corrupt("\(what): \(entry.count) attributes in \(entry.size) bytes is impossible")
        }
        let limit = superBlock.xattrIDTableStart
        var position = try SquashFS.MetadataStore.position(reference: entry.reference, tableStart: table.tableStart, what: what)
        var result: [ExtendedAttribute] = []
        for _ in 0..<entry.count {
            // squashfs_xattr_entry: type u16 @0 (0 user, 1 trusted, 2 security; 0x100 = value
            // stored out of line), size u16 @2 (name length), then the name without prefix.
            let key = ByteCursor(try store.read(4, at: &position, limit: limit, what: what), context: "squashfs xattr entry")
            let type = try key.u16le(at: 0)
            let nameLength = Int(try key.u16le(at: 2))
            guard nameLength > 0, nameLength <= 255 else {
                throw FWError.corrupt("\(what): name of \(nameLength) bytes")
            }
            let name = try store.read(nameLength, at: &position, limit: limit, what: what)
            let prefix: String
            switch type & 0xFF {
            case 0: prefix = "user."
            case 1: prefix = "trusted."
            case 2: prefix = "security."
            default: throw FWError.corrupt("\(what): unknown name prefix type \(type & 0xFF)")
            }
            // squashfs_xattr_val: vsize u32 @0, then the value (or, out of line, a u64 reference
            // to another squashfs_xattr_val in the xattr table).
            var valuePosition = position
            var value = try readXattrValue(at: &position, limit: limit, what: what)
            if type & 0x100 != 0 {
                guard value.count == 8 else {
                    throw FWError.corrupt("\(what): out-of-line value reference of \(value.count) bytes")
                }
                let reference = try ByteCursor(value, context: "squashfs xattr value reference").u64le(at: 0)
                valuePosition = try SquashFS.MetadataStore.position(reference: reference, tableStart: table.tableStart, what: what)
                value = try readXattrValue(at: &valuePosition, limit: limit, what: what)
            }
            result.append(ExtendedAttribute(name: prefix + String(decoding: name, as: UTF8.self), value: value))
        }
        return result
    }

    private func readXattrValue(at position: inout SquashFS.MetadataPosition, limit: UInt64, what: String) throws -> [UInt8] {
        let size = try ByteCursor(try store.read(4, at: &position, limit: limit, what: what), context: "squashfs xattr value").u32le(at: 0)
        // Linux caps one value at 64 KiB (XATTR_SIZE_MAX).
        guard size <= 65536 else { throw FWError.corrupt("\(what): value of \(size) bytes (at most 65536)") }
        return try store.read(Int(size), at: &position, limit: limit, what: what)
    }

    // MARK: - Files

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        do {
            let ino = try self.inode(inode)
            guard ino.header.type.fileType == .regular else {
                throw FWError(.invalidArgument, "inode 0x\(String(inode, radix: 16)) is not a regular file")
            }
            return try SquashFSFile(reader: self, reference: inode, inode: ino)
        } catch let error as FWError {
            throw error.within(place)
        }
    }

    /// The decompressed fragment block `index` (kept until another fragment is needed).
    func fragmentBlock(_ index: UInt32) throws -> [UInt8] {
        guard index < superBlock.fragmentCount, superBlock.fragmentTableStart != SquashFS.invalidTable else {
            throw FWError.corrupt("squashfs fragment \(index) is outside the \(superBlock.fragmentCount)-entry fragment table")
        }
        let entry = try SquashFS.FragmentEntry(Self.tableEntry(store: store, source: source, indexAt: superBlock.fragmentTableStart,
                                                               index: Int(index), entrySize: SquashFS.FragmentEntry.size,
                                                               what: "squashfs fragment table"))
        if let cached = fragmentCache, cached.address == entry.start { return cached.data }
        var data = [UInt8](repeating: 0, count: Int(blockSize))
        let n = try readDataBlock(at: entry.start, sizeField: entry.size, into: &data, what: "fragment block \(index)")
        data.removeSubrange(n...)
        fragmentCache = (entry.start, data)
        return data
    }

    /// Reads one data or fragment block (size field: bit 24 uncompressed, bits 0...23 stored
    /// length, at most the block size) into `output`; returns the decompressed length.
    func readDataBlock(at address: UInt64, sizeField: UInt32, into output: inout [UInt8], what: String) throws -> Int {
        let stored = Int(sizeField & ~SquashFS.dataUncompressedBit)
        guard sizeField & ~(SquashFS.dataUncompressedBit | 0xFF_FFFF) == 0, stored > 0, stored <= Int(blockSize) else {
            throw FWError.corrupt("squashfs \(what) at \(address): bad stored size 0x\(String(sizeField, radix: 16))")
        }
        let (end, overflow) = address.addingReportingOverflow(UInt64(stored))
        guard !overflow, end <= superBlock.bytesUsed else {
            throw FWError.corrupt("squashfs \(what) at \(address) (\(stored) bytes) is past the end of the image (\(superBlock.bytesUsed) bytes used)")
        }
        if sizeField & SquashFS.dataUncompressedBit != 0 {
            try output.withUnsafeMutableBytes {
                try source.readExactly(at: address, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<stored]))
            }
            return stored
        }
        let raw = try source.bytes(at: address, count: stored)
        do {
            return try raw.withUnsafeBytes { input in
                try output.withUnsafeMutableBytes { try decompressor.decompress(input, into: $0) }
            }
        } catch let error as FWError {
            throw FWError(error.code, "squashfs \(what) at \(address): \(error.message)", cause: error)
        }
    }
}

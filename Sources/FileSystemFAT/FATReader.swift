import DiskImage
import FileSystems

/// Reads a FAT12/16/32 filesystem with VFAT long names, presenting it as Linux's vfat driver
/// does with default options (see docs/readers-fat.md).
///
/// Inode numbers are synthetic and stable: the byte offset of an entry's short directory record
/// in the volume (a multiple of 32, never 1); the root directory is inode 1.
public final class FATReader: FileSystemReader {
    public let formatName = "vfat"
    public let sourceName: String
    /// The image and partition its errors name.
    public let place: FWError.Place
    public let rootInode: UInt64 = 1
    public let bootSector: FAT.BootSector
    public let options: FATMountOptions
    public var kind: FAT.Kind { bootSector.kind }
    /// The boot sector's total sectors of its sector size.
    public var declaredSize: UInt64? { bootSector.totalSectors * UInt64(bootSector.bytesPerSector) }

    let source: any ByteSource
    /// Paths of the entries listed so far, for error messages.
    private var paths: [UInt64: String] = [1: "/"]
    private var fatCache = FATCache()

    /// The largest directory Linux handles (FAT_MAX_DIR_SIZE: 65536 entries of 32 bytes).
    public static let maximumDirectoryBytes: UInt64 = 65536 * 32

    /// Reads and validates the boot sector; nothing else is read until asked.
    public init(source: any ByteSource, name: String, options: FATMountOptions = .init()) throws {
        self.source = source
        self.sourceName = name
        self.place = FWError.Place(source: source, name: name)
        self.options = options
        do {
            guard source.size >= 512 else {
                throw FWError(.corrupt, "FAT boot sector: the source is only \(source.size) bytes")
            }
            var boot = try FAT.BootSector(try source.bytes(at: 0, count: 512))
            if boot.bytesPerSector > 512, source.size >= UInt64(boot.bytesPerSector) {
                boot = try FAT.BootSector(try source.bytes(at: 0, count: Int(boot.bytesPerSector)))
            }
            let (fatEnd, overflow) = boot.fatOffset.addingReportingOverflow(boot.fatBytes)
            guard !overflow, fatEnd <= source.size else {
                throw FWError(.corrupt, "FAT boot sector: the first FAT (bytes \(boot.fatOffset)..<\(fatEnd)) is past the end of the \(source.size)-byte source")
            }
            self.bootSector = boot
        } catch let error as FWError {
            throw error.within(place)
        }
    }

    // MARK: FileSystemReader

    public func metadata(of inode: UInt64) throws -> Metadata {
        if inode == rootInode {
            // Linux gives the root directory all-zero times (fat_read_root).
            return Metadata(type: .directory, permissions: options.directoryPermissions(), uid: options.uid, gid: options.gid,
                            size: 0, mtime: Timestamp(seconds: 0), atime: Timestamp(seconds: 0), ctime: Timestamp(seconds: 0),
                            inode: rootInode)
        }
        let entry = try shortEntry(at: inode)
        let mtime = Timestamp(seconds: FAT.unixTime(date: entry.writeDate, time: entry.writeTime))
        let atime = Timestamp(seconds: FAT.unixTime(date: entry.accessDate, time: 0))
        if entry.isDirectory {
            return Metadata(type: .directory, permissions: options.directoryPermissions(), uid: options.uid, gid: options.gid,
                            size: 0, mtime: mtime, atime: atime, ctime: mtime, inode: inode)
        }
        return Metadata(type: .regular, permissions: options.filePermissions(readOnly: entry.attributes.contains(.readOnly)),
                        uid: options.uid, gid: options.gid, size: UInt64(entry.fileSize), mtime: mtime, atime: atime,
                        ctime: mtime, inode: inode)
    }

    /// vfat lookups ignore case (ASCII letters, as the kernel's default `check=relaxed` and
    /// case-insensitive dentry compare do): `cmdline.txt` finds `CMDLINE.TXT`.
    public func entry(named name: [UInt8], in directory: UInt64) throws -> DirectoryEntry? {
        let entries = try directoryEntries(of: directory)
        if let exact = entries.first(where: { $0.name == name }) { return exact }
        func folded(_ bytes: [UInt8]) -> [UInt8] { bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 } }
        let wanted = folded(name)
        return entries.first { folded($0.name) == wanted }
    }

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        let path = paths[inode] ?? "inode \(inode)"
        do {
            var result: [DirectoryEntry] = []
            var names = FAT.LongNameAssembler()
            try forEachDirectoryRecord(of: inode) { cursor, recordOffset in
                let e = try FAT.ShortEntry(cursor, at: 0)
                if e.isFree {
                    names.reset()
                } else if e.isLongName {
                    names.add(try FAT.LongNameEntry(cursor, at: 0))
                } else if e.isVolumeLabel || e.isDotEntry {
                    names.reset()
                } else {
                    // An 8.3 name that is all spaces shows nothing (Linux skips the entry).
                    let long = names.finish(for: e)
                    let name = long ?? Array(e.displayName.utf8)
                    if !name.isEmpty { result.append(DirectoryEntry(name: name, inode: recordOffset)) }
                }
            }
            for e in result {
                paths[e.inode] = (path == "/" ? "/" : path + "/") + String(decoding: e.name, as: UTF8.self)
            }
            return result
        } catch let error as FWError {
            throw error.within(place, path: path)
        }
    }

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        let path = paths[inode] ?? "inode \(inode)"
        do {
            guard inode != rootInode else { throw FWError(.invalidArgument, "the root directory is not a regular file") }
            let entry = try shortEntry(at: inode)
            guard !entry.isDirectory else { throw FWError(.invalidArgument, "a directory is not a regular file") }
            let size = UInt64(entry.fileSize)
            let first = entry.firstCluster(kind)
            let clusterSize = UInt64(bootSector.clusterSize)
            let needed = (size + clusterSize - 1) / clusterSize
            if needed > 0 {
                guard needed <= UInt64(bootSector.clusterCount) else {
                    throw FWError(.corrupt, "file size \(size) needs \(needed) clusters, more than the volume's \(bootSector.clusterCount)")
                }
                try checkChain(from: first, needed: needed)
            }
            return FATFile(reader: self, firstCluster: first, size: size, path: path)
        } catch let error as FWError {
            throw error.within(place, path: path)
        }
    }

    /// The volume label as blkid reports it: the root directory's volume-label entry, else the
    /// boot sector's, nil when neither holds one.
    public func volumeLabel() throws -> String? {
        var label: String?
        try forEachDirectoryRecord(of: rootInode) { cursor, _ in
            guard label == nil else { return }
            let e = try FAT.ShortEntry(cursor, at: 0)
            if !e.isFree, e.isVolumeLabel {
                let text = FAT.shortNameText(e.name, lowercaseBase: false, lowercaseExtension: false, asLabel: true)
                if !text.isEmpty { label = text }
            }
        }
        return label ?? bootSector.bootSectorLabel
    }

    // MARK: Entries and directories

    /// Reads and checks the short entry an inode number points at.
    func shortEntry(at inode: UInt64) throws -> FAT.ShortEntry {
        guard inode % 32 == 0, inode >= bootSector.rootDirectoryOffset, inode < source.size else {
            throw FWError(.invalidArgument, "inode \(inode) is not a FAT directory entry offset")
        }
        let entry = try FAT.ShortEntry(ByteCursor(try source.bytes(at: inode, count: 32), context: "FAT directory entry at \(inode)"), at: 0)
        guard !entry.isFree, !entry.isLongName, !entry.isVolumeLabel else {
            throw FWError(.invalidArgument, "inode \(inode) is not a file or directory entry")
        }
        return entry
    }

    /// Calls `body` with each 32-byte record of a directory and its byte offset in the volume:
    /// the fixed root region on FAT12/16, otherwise the directory's cluster chain (checked, with
    /// loops detected). Like Linux, a 0x00 record does not end the listing.
    func forEachDirectoryRecord(of inode: UInt64, _ body: (ByteCursor, UInt64) throws -> Void) throws {
        var regions: [(offset: UInt64, length: UInt64)] = []
        var first: UInt32 = 0
        if inode == rootInode {
            if kind == .fat32 { first = bootSector.rootCluster32 } else {
                regions.append((bootSector.rootDirectoryOffset, bootSector.rootDirectoryBytes))
            }
        } else {
            let entry = try shortEntry(at: inode)
            guard entry.isDirectory else { throw FWError(.invalidArgument, "not a directory") }
            first = entry.firstCluster(kind)
            guard first != 0 else { throw FWError(.corrupt, "directory entry has no first cluster") }
        }
        let recordsPerRead = 128
        func visit(offset: UInt64, length: UInt64) throws {
            var done: UInt64 = 0
            while done < length {
                let chunk = min(length - done, UInt64(recordsPerRead * 32))
                let at = offset + done
                let bytes = try source.bytes(at: at, count: Int(chunk))
                var r = 0
                while r + 32 <= bytes.count {
                    try body(ByteCursor(Array(bytes[r..<(r + 32)]), context: "FAT directory entry at \(at + UInt64(r))"), at + UInt64(r))
                    r += 32
                }
                done += chunk
            }
        }
        if !regions.isEmpty {
            for r in regions { try visit(offset: r.offset, length: r.length) }
            return
        }
        var chain = try ClusterChain(reader: self, first: first)
        var total: UInt64 = 0
        while let cluster = try chain.next() {
            total += UInt64(bootSector.clusterSize)
            guard total <= Self.maximumDirectoryBytes else {
                throw FWError(.limitExceeded, "directory is larger than \(Self.maximumDirectoryBytes) bytes (65536 entries)")
            }
            try visit(offset: bootSector.offset(ofCluster: cluster), length: UInt64(bootSector.clusterSize))
        }
    }

    // MARK: The FAT

    /// What a FAT entry says about the cluster after `cluster`.
    enum Link: Equatable {
        case next(UInt32)
        case end
        case free
        case bad
        /// 1, or a number past the last cluster: a corrupt FAT.
        case invalid(UInt32)
    }

    /// The FAT entry of `cluster` (2...lastCluster), from the first FAT (as Linux reads it).
    func link(of cluster: UInt32) throws -> Link {
        guard cluster >= 2, cluster <= bootSector.lastCluster else {
            throw FWError(.corrupt, "cluster \(cluster) is outside the volume's clusters 2...\(bootSector.lastCluster)")
        }
        let n = UInt64(cluster)
        var value: UInt32
        switch kind {
        case .fat12:
            let v = try fatCache.u16(at: n + n / 2, reader: self)
            value = UInt32(n & 1 == 1 ? v >> 4 : v & 0xFFF)
        case .fat16:
            value = UInt32(try fatCache.u16(at: 2 * n, reader: self))
        case .fat32:
            value = try fatCache.u32(at: 4 * n, reader: self) & 0x0FFF_FFFF
        }
        if value == 0 { return .free }
        if value >= kind.endOfChain { return .end }
        if value == kind.badCluster { return .bad }
        if value < 2 || value > bootSector.lastCluster { return .invalid(value) }
        return .next(value)
    }

    /// Checks, before any content is read, that a file's chain has the clusters its size needs and
    /// does not loop (a loop anywhere in the chain is reported, found by Brent's method and
    /// bounded by the cluster count).
    func checkChain(from first: UInt32, needed: UInt64) throws {
        var chain = try ClusterChain(reader: self, first: first)
        var count: UInt64 = 0
        while count < needed {
            guard try chain.next() != nil else {
                throw FWError(.corrupt, "cluster chain from \(first) ends after \(count) clusters; the file size needs \(needed)")
            }
            count += 1
        }
        // Past what the size needs, only a loop matters (Linux ignores extra clusters).
        while true {
            do {
                guard try chain.next() != nil else { return }
            } catch let error as FWError where error.message.contains("loops") {
                throw error
            } catch {
                return
            }
        }
    }
}

/// Follows a cluster chain: every link checked, loops detected with Brent's method, length
/// bounded by the cluster count (a longer chain must repeat a cluster).
struct ClusterChain {
    private let reader: FATReader
    private let first: UInt32
    private var current: UInt32?
    private var started = false
    private var steps: UInt64 = 0
    private var tortoise: UInt32
    private var power: UInt64 = 1
    private var lambda: UInt64 = 0

    init(reader: FATReader, first: UInt32) throws {
        guard first >= 2, first <= reader.bootSector.lastCluster else {
            throw FWError(.corrupt, "first cluster \(first) is outside the volume's clusters 2...\(reader.bootSector.lastCluster)")
        }
        self.reader = reader
        self.first = first
        self.current = first
        self.tortoise = first
    }

    /// The next cluster of the chain, nil after its end.
    mutating func next() throws -> UInt32? {
        if !started {
            started = true
            steps = 1
            return first
        }
        guard let c = current else { return nil }
        switch try reader.link(of: c) {
        case .end:
            current = nil
            return nil
        case .next(let n):
            if n == tortoise {
                throw FWError(.corrupt, "cluster chain from \(first) loops (cluster \(c) leads back to \(n))")
            }
            steps += 1
            guard steps <= UInt64(reader.bootSector.clusterCount) else {
                throw FWError(.corrupt, "cluster chain from \(first) loops (longer than the \(reader.bootSector.clusterCount) clusters of the volume)")
            }
            lambda += 1
            if lambda == power {
                tortoise = n
                power *= 2
                lambda = 0
            }
            current = n
            return n
        case .free:
            throw FWError(.corrupt, "cluster chain from \(first) reaches free cluster \(c) (FAT entry 0)")
        case .bad:
            throw FWError(.corrupt, "cluster chain from \(first) reaches a cluster marked bad after \(c)")
        case .invalid(let v):
            throw FWError(.corrupt, "cluster chain from \(first): cluster \(c) points to \(v), outside clusters 2...\(reader.bootSector.lastCluster)")
        }
    }
}

/// Chunks of the first FAT kept in memory (at most 32 chunks of 32 KiB).
struct FATCache {
    private static let chunkSize: UInt64 = 32 << 10
    private static let maximumChunks = 32
    private var chunks: [UInt64: [UInt8]] = [:]
    private var order: [UInt64] = []

    private mutating func byte(at offset: UInt64, reader: FATReader) throws -> UInt8 {
        guard offset < reader.bootSector.fatBytes else {
            throw FWError(.corrupt, "FAT entry at byte \(offset) is past the \(reader.bootSector.fatBytes)-byte FAT")
        }
        let index = offset / Self.chunkSize
        let within = Int(offset % Self.chunkSize)
        if let chunk = chunks[index] { return chunk[within] }
        let start = index * Self.chunkSize
        let length = min(Self.chunkSize, reader.bootSector.fatBytes - start)
        let chunk = try reader.source.bytes(at: reader.bootSector.fatOffset + start, count: Int(length))
        if order.count >= Self.maximumChunks {
            chunks[order.removeFirst()] = nil
        }
        chunks[index] = chunk
        order.append(index)
        return chunk[within]
    }

    mutating func u16(at offset: UInt64, reader: FATReader) throws -> UInt16 {
        UInt16(try byte(at: offset, reader: reader)) | UInt16(try byte(at: offset + 1, reader: reader)) << 8
    }

    mutating func u32(at offset: UInt64, reader: FATReader) throws -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(try byte(at: offset + UInt64(i), reader: reader)) << (8 * i) }
        return v
    }
}

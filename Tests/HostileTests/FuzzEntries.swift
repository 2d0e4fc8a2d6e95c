// The entry points of the fuzz targets (Fuzz/build.sh compiles this file into each libFuzzer
// binary; HostileTests replays Tests/Corpus/<target>/ through the same functions). No Testing
// import here: the fuzz build links only the project's modules.
import Assembly
import BoltDB
import Codecs
import DiskImage
import DockerState
import Ext4Image
import FileSystemBtrfs
import FileSystemEROFS
import FileSystemExt4
import FileSystemF2FS
import FileSystemFAT
import FileSystemJFFS2
import FileSystemSquashFS
import FileSystemTar
import FileSystemUBIFS
import FileSystems
import MountPlan
import PartitionTable
#if canImport(Glibc)
import Glibc
#endif

public enum FuzzEntries {
    /// Target names, as used for Fuzz/<name>.swift, .build-fuzz/<name> and Tests/Corpus/<name>/.
    public static let targets = ["partition-table", "squashfs", "erofs", "fat", "fstab", "unit-file", "boot-environment", "bolt", "tar", "jbd2",
                                 "ext4-writer", "containerd-store", "podman-store", "podman-db", "layer-export", "btrfs", "f2fs", "uci-fstab",
                                 "jffs2", "ubi", "ubifs"]

    /// Runs one input through the named target. Errors thrown by the parsers are the expected
    /// outcome for most inputs; a crash, a hang or an unbounded allocation is the bug.
    public static func run(_ target: String, _ data: [UInt8]) {
        switch target {
        case "partition-table": partitionTable(data)
        case "squashfs": fileSystem(data) { try SquashFSReader(source: $0, name: "fuzz") }
        case "erofs": fileSystem(data) { try EROFSReader(source: $0, name: "fuzz") }
        case "fat": fileSystem(data) { try FATReader(source: $0, name: "fuzz") }
        case "btrfs": btrfs(data)
        case "f2fs":
            guard let source = SparseSource(data) else { return }
            fileSystem(source) { try F2FSReader(source: $0, name: "fuzz") }
        case "jffs2": fileSystem(data) { try JFFS2Reader(source: $0, name: "fuzz") }
        case "ubifs": fileSystem(data) { try UBIFSReader(source: $0, name: "fuzz") }
        case "ubi": ubi(data)
        case "fstab": _ = Fstab.parse(data)
        case "uci-fstab": _ = UCIFstab(data)
        case "unit-file": _ = UnitFile.parse(data, file: "/etc/systemd/system/fuzz.mount")
        case "boot-environment":
            _ = GrubEnvironment.parse(data)
            _ = UBootEnvironment.find(in: data)
            _ = UBootEnvironment.parseText(data)
            // The slot conventions' text formats (RAUC system.conf and status, autoboot.txt,
            // fw_env.config, kernel command lines).
            _ = RAUCSystemConfig.parse(data)
            _ = RAUCStatus.summary(data, file: "fuzz")
            _ = RaspberryPiAutoboot.parse(data)
            _ = FwEnvConfig.parse(data)
            _ = KernelCommandLine.parse(String(decoding: data, as: UTF8.self))
        case "bolt": bolt(data)
        case "tar":
            // A gzip input is decompressed first (the seeds: 10,000-deep and 100,000-wide trees).
            fileSystem(gunzipped(data)) { try TarReader(source: $0, name: "fuzz", ociWhiteouts: true) }
        case "ext4-writer": _ = ext4Writer(data)
        case "containerd-store", "podman-store": store(data)
        case "podman-db": store(podmanStore(dbSQL: data))
        case "layer-export": layerExport(data)
        case "jbd2":
            // The journal parser alone (scan, revoke and replay passes); a small memory limit so
            // that the overlay's spill to a temporary file is exercised too.
            _ = JournalParser.replay(journal: data, filesystemBlocks: 1 << 16, memoryLimit: 64 * 1024)
        default: break
        }
    }

    /// The largest decompressed input, 8 MiB: the seeds' 10,000-deep and 100,000-wide trees
    /// (about 100 MB of tar each) are cut to about 2,800 levels (beyond the walk's 1024) and
    /// 8,000 entries, so that one input stays well within the 10 s timeout under ASan on a busy
    /// machine (the whole trees are HostileTests' TarInputTests, without ASan).
    static let gunzipLimit = 8 << 20

    /// `data` gunzipped when it starts with gzip's magic (at most `gunzipLimit` bytes, cut
    /// there; a broken stream keeps what came before), else `data`.
    static func gunzipped(_ data: [UInt8]) -> [UInt8] {
        guard data.count > 2, data[0] == 0x1F, data[1] == 0x8B, let decoder = try? GzipDecoder() else { return data }
        var out: [UInt8] = []
        struct Full: Error {}
        do {
            try data.withUnsafeBytes { input in
                try decoder.feed(input) { chunk in
                    out.append(contentsOf: chunk.prefix(gunzipLimit - out.count))
                    if out.count >= gunzipLimit { throw Full() }
                }
            }
            try decoder.finish { out.append(contentsOf: $0.prefix(gunzipLimit - out.count)) }
        } catch {}
        return out
    }

    /// A tar (gzip allowed) through TarReader into a new 8 MiB ext4 image in a temporary file,
    /// as `--add-tar` writes it; `verify` (the corpus replay: e2fsck -fn) sees the image before
    /// it is removed. Returns whether the image was finished.
    @discardableResult
    static func ext4Writer(_ data: [UInt8], verify: ((String) -> Void)? = nil) -> Bool {
        guard let reader = try? TarReader(source: MemorySource(gunzipped(data), name: "fuzz"), name: "fuzz", ociWhiteouts: false) else { return false }
        var template = Array("/tmp/fwa-fuzz-ext4-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return false }
        let path = String(cString: template)
        defer { unlink(path) }
        let blocks: UInt64 = 2048
        guard ftruncate(fd, off_t(blocks * 4096)) == 0 else { close(fd); return false }
        close(fd)
        let geometry = Ext4ImageGeometry(blocks: blocks, inodes: 1024, uuid: Array(repeating: 1, count: 16),
                                         hashSeed: Array(repeating: 2, count: 16), timestamp: 1_700_000_000)
        guard let writer = try? Ext4ImageWriter(path: path, geometry: geometry) else { return false }
        // libext2fs holds the file open: unlinked now, a timeout or a crash leaves nothing behind.
        if verify == nil { unlink(path) }
        guard (try? writer.add(tree: reader, check: {})) != nil, (try? writer.finish()) != nil else { return false }
        verify?(path)
        return true
    }

    /// Opens the bytes as a bbolt file and reads every bucket, nested ones included, at most
    /// `budget` buckets.
    static func bolt(_ data: [UInt8], budget: Int = 4096) {
        guard let db = try? Bolt.Database(source: MemorySource(data, name: "fuzz"), name: "fuzz.db") else { return }
        var stack = [db.root]
        var left = budget
        while left > 0, let bucket = stack.popLast() {
            left -= 1
            guard let entries = try? bucket.entries() else { continue }
            for e in entries where e.isBucket {
                if let b = try? bucket.bucket(e) { stack.append(b) }
            }
        }
    }

    /// The decompression bound of the store targets: small, so that an input cannot make one
    /// execution write much.
    static let layerLimits = LayerLimits(maximumSize: 8 << 20, maximumRatio: 100)

    /// The bytes as a tar of a store's files (paths from the namespace root: a containerd root
    /// with its meta.db, snapshotter metadata.db, content blobs and snapshot directories, or
    /// Podman's containers/storage with its JSON records and libpod's bolt_state.db or Podman 5's
    /// SQLite db.sql), mounted at
    /// "/": the data-roots are located and inspected as `docker --json` does, and every image and
    /// container is exported (layers resolved, merged, walked).
    /// Returns what it found (for the seeds' own test): data-roots, images, containers, exports.
    @discardableResult
    static func store(_ data: [UInt8]) -> (roots: Int, images: Int, containers: Int, exports: Int) {
        var found = (roots: 0, images: 0, containers: 0, exports: 0)
        guard let tar = try? TarReader(source: MemorySource(data, name: "fuzz"), name: "fuzz") else { return found }
        let namespace = NamespaceFileSystem(name: "fuzz")
        guard (try? namespace.mount(tar, at: .root, origin: "fuzz")) != nil else { return found }
        let (roots, _) = DataRootLocator.locate(in: namespace)
        for (root, via) in roots {
            let report = root.inspect(foundVia: via, countMarkers: true)
            found.roots += 1
            found.images += report.images.count
            found.containers += report.containers.count
            for image in report.images.prefix(4) {
                guard let layers = try? root.imageLayers(image.id, limits: layerLimits).layers else { continue }
                walkMerged(layers)
                found.exports += 1
            }
            for container in report.containers.prefix(4) {
                guard let layers = try? root.containerLayers(container.id).layers else { continue }
                walkMerged(layers)
                found.exports += 1
            }
        }
        return found
    }

    /// A Podman 5 store holding `dbSQL` as its db.sql (and empty containers/storage records), as a
    /// tar for `store`: the whole input reaches SQLite through SQLiteDB's VFS and libpod's state reader.
    static func podmanStore(dbSQL: [UInt8]) -> [UInt8] {
        let root = "var/lib/containers/storage"
        var tar: [UInt8] = []
        for dir in ["var", "var/lib", "var/lib/containers", root, root + "/overlay-layers", root + "/overlay-containers"] {
            tar += ustar(dir + "/", type: "5", [])
        }
        tar += ustar(root + "/overlay-layers/layers.json", type: "0", Array("[]".utf8))
        tar += ustar(root + "/overlay-containers/containers.json", type: "0", Array("[]".utf8))
        tar += ustar(root + "/db.sql", type: "0", dbSQL)
        return tar + [UInt8](repeating: 0, count: 1024)
    }

    /// One ustar member (name under 100 bytes, mode 0644/0755, owner 0, mtime 0), padded to 512.
    static func ustar(_ name: String, type: Character, _ body: [UInt8]) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int) {
            for (i, b) in text.utf8.enumerated() { h[offset + i] = b }
        }
        put(name, at: 0)
        put(type == "5" ? "0000755" : "0000644", at: 100)
        put("0000000", at: 108)
        put("0000000", at: 116)
        put(String(body.count, radix: 8).leftPadded(to: 11), at: 124)
        put("00000000000", at: 136)
        put("        ", at: 148)
        put(String(type), at: 156)
        put("ustar", at: 257)
        put("00", at: 263)
        put(String(h.reduce(0) { $0 + Int($1) }, radix: 8).leftPadded(to: 6), at: 148)
        h[154] = 0
        return h + body + [UInt8](repeating: 0, count: (512 - body.count % 512) % 512)
    }

    /// The bytes as a content-store layer blob (tar, tar+gzip, tar+zstd) named by its own digest:
    /// verified and decompressed within `layerLimits` as `--export-image` reads it, then merged
    /// over itself and walked.
    static func layerExport(_ data: [UInt8]) {
        let source = MemorySource(data, name: "fuzz")
        let digest = "sha256:" + SHA256.hex(data)
        guard let tar = try? LayerBlob.verifiedTar(source, digest: digest, diffID: nil, layer: "fuzz layer", place: "fuzz", limits: layerLimits),
              let reader = try? TarReader(source: tar, name: "fuzz", ociWhiteouts: true) else { return }
        let layer = Layer(reader: reader, inode: reader.rootInode)
        walkMerged([layer, layer])
    }

    /// The overlay of `layers` walked like an export: at most `entryBudget` entries, the first
    /// 64 KiB of each regular file read.
    static func walkMerged(_ layers: [Layer]) {
        guard let merged = try? NamespaceFileSystem(overlayOf: layers, name: "fuzz") else { return }
        walk(merged)
    }

    /// btrfs: the input is a sparse image (`SparseSource`: a btrfs needs 100+ MiB, of which a few
    /// hundred KiB are not zero), read without checksum verification so mutations reach the
    /// trees; its subvolumes listed, the default and the top-level views walked.
    static func btrfs(_ data: [UInt8]) {
        guard let source = SparseSource(data),
              let reader = try? BtrfsReader(source: source, name: "fuzz", verifyChecksums: false) else { return }
        walk(reader, entryBudget: 2048)
        _ = try? reader.subvolumes()
        if let top = try? reader.view(.id(5)) { walk(top, entryBudget: 2048) }
        _ = try? reader.lookup(Array("/etc/fstab".utf8), followLast: true)
    }

    static func partitionTable(_ data: [UInt8]) {
        guard let table = try? PartitionTable.read(from: MemorySource(data, name: "fuzz")) else { return }
        for p in table.partitions { _ = p.firstSector; _ = p.sectorCount }
    }

    /// Attaches the bytes as a UBI image (spare-byte layouts detected), reads the first 1 MiB of
    /// every volume and walks the UBIFS or squashfs a volume holds.
    static func ubi(_ data: [UInt8]) {
        guard let image = try? UBIImage.attach(MemorySource(data, name: "fuzz")) else { return }
        _ = image.partitionTable()
        for v in image.volumes {
            guard let volume = try? image.volume(v.id, place: FWError.Place(disk: "fuzz", partition: v.name)) else { continue }
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            var offset: UInt64 = 0
            while offset < min(volume.size, 1 << 20) {
                let n = buffer.withUnsafeMutableBytes { (try? volume.read(at: offset, into: $0)) ?? 0 }
                if n <= 0 { break }
                offset += UInt64(n)
            }
            for open in [{ try UBIFSReader(source: volume, name: "fuzz") as any FileSystemReader },
                         { try SquashFSReader(source: volume, name: "fuzz") as any FileSystemReader }] {
                if let reader = try? open() { walk(reader, entryBudget: 1024) }
            }
        }
    }

    /// Opens the bytes as a filesystem, walks at most `entryBudget` entries, reads the first
    /// 64 KiB of each regular file and resolves a few paths (symlinks included).
    static func fileSystem(_ data: [UInt8], entryBudget: Int = 4096, open: (MemorySource) throws -> any FileSystemReader) {
        fileSystem(MemorySource(data, name: "fuzz"), entryBudget: entryBudget, open: open)
    }

    static func fileSystem<Source: ByteSource>(_ source: Source, entryBudget: Int = 4096, open: (Source) throws -> any FileSystemReader) {
        guard let reader = try? open(source) else { return }
        walk(reader, entryBudget: entryBudget)
        for path in ["/etc/fstab", "/etc/os-release", "/a/b/c/d"] {
            _ = try? reader.lookup(Array(path.utf8), followLast: true)
        }
    }

    /// Walks `reader` like an archive does: at most `entryBudget` entries, the first 64 KiB of
    /// each regular file read.
    static func walk(_ reader: any FileSystemReader, entryBudget: Int = 4096) {
        var walk = TreeWalk(reader)
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var budget = entryBudget
        while budget > 0, let entry = walk.next() {
            budget -= 1
            guard entry.metadata.type == .regular, let file = try? reader.openFile(entry.metadata.inode) else { continue }
            var total = 0
            while total < 64 * 1024 {
                let n = buffer.withUnsafeMutableBytes { (try? file.read(into: $0)) ?? 0 }
                if n <= 0 { break }
                total += n
            }
        }
    }
}

extension String {
    /// Zero-padded on the left to `width` characters (tar's octal fields).
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}

/// A large image given by its non-zero pieces (fuzzing filesystems that need a large device):
/// le64 size (at most 1 TiB), then records of le64 offset, le32 length and that many bytes; the
/// rest reads as zeros. A later record overrides an earlier one where they overlap.
final class SparseSource: ByteSource {
    let size: UInt64
    let name = "fuzz"
    private let pieces: [(offset: UInt64, bytes: ArraySlice<UInt8>)]

    init?(_ data: [UInt8]) {
        let c = ByteCursor(data, context: "sparse image")
        guard let size = try? c.u64le(at: 0), size <= 1 << 40 else { return nil }
        self.size = size
        var pieces: [(UInt64, ArraySlice<UInt8>)] = []
        var position = 8
        while let offset = try? c.u64le(at: position), let length = try? c.u32le(at: position + 8) {
            let start = position + 12
            let end = min(data.count, start + Int(length))
            pieces.append((offset, data[start..<end]))
            position = end
        }
        self.pieces = pieces
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size else { return 0 }
        let count = Int(min(UInt64(buffer.count), size - offset))
        let out = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
        out.initializeMemory(as: UInt8.self, repeating: 0)
        let end = offset + UInt64(count)
        for piece in pieces {
            let pieceEnd = piece.offset.addingReportingOverflow(UInt64(piece.bytes.count))
            guard !pieceEnd.overflow, piece.offset < end, pieceEnd.partialValue > offset else { continue }
            let from = max(offset, piece.offset), to = min(end, pieceEnd.partialValue)
            let source = piece.bytes.startIndex + Int(from - piece.offset)
            piece.bytes.withUnsafeBytes { raw in
                let base = raw.baseAddress! + (source - piece.bytes.startIndex)
                (out.baseAddress! + Int(from - offset)).copyMemory(from: base, byteCount: Int(to - from))
            }
        }
        return count
    }
}

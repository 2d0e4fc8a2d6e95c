import DiskImage
import FileSystemExt4
import FileSystems
import Foundation
import Testing
import TestSupport

/// The images built by images/disks/fs-ext4.sh, all from one source tree (fs-ext4.manifest).
enum Ext4Images {
    static let all = ["fs-ext4.img", "fs-ext4-inline.img", "fs-ext4-bigalloc.img", "fs-ext2.img", "fs-ext3.img"]
    /// Images with 128-byte inodes keep no nanoseconds.
    static func keepsNanoseconds(_ image: String) -> Bool { image != "fs-ext2.img" }

    static func open(_ image: String) throws -> Ext4Reader {
        try Ext4Reader(source: FileSource(path: TestImages.path(image)), name: image)
    }

    static func sourceManifest() throws -> [ManifestEntry] {
        return try Manifest.load("fs-ext4.manifest")
    }
}

@Suite("Ext4Reader: images made by mke2fs -d")
struct Ext4ReaderTests {
    @Test("every field matches the source tree", arguments: Ext4Images.all)
    func matchesSourceTree(image: String) throws {
        let reader = try Ext4Images.open(image)
        var (actual, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        // mke2fs creates lost+found, which the source tree does not have: check it, then leave it out.
        let lostFound = try #require(actual.first { $0.path == "lost+found" })
        #expect(lostFound.type == "directory" && lostFound.perm == 0o700 && lostFound.uid == 0 && lostFound.gid == 0)
        #expect(!actual.contains { $0.path.hasPrefix("lost+found/") })
        var expected = try Ext4Images.sourceManifest()
        if image == "fs-ext4-inline.img" {
            // mke2fs 1.47.0 -d with inline_data loses the trailing hole of a sparse file: the 1 GiB
            // var/sparse.img ends up 512 MiB + 4 KiB long (debugfs and the kernel agree, see the
            // mount test). Check what it does hold, then leave it out of the comparison.
            try checkTruncatedSparseFile(reader, image: image)
            expected.removeAll { $0.path == "var/sparse.img" }
            actual.removeAll { $0.path == "var/sparse.img" }
        }
        // The source really has what the images must keep (so the comparison cannot pass vacuously).
        #expect(expected.contains { $0.type == "socket" })
        #expect(expected.contains { $0.path == "etc/hostname" && $0.mtime_ns == 123_456_789 })
        #expect(expected.contains { !$0.xattrs.isEmpty })
        // POSIX ACLs must come back in getxattr's format (version 2 header), not ext4's on-disk one.
        #expect(expected.contains { $0.xattrs["system.posix_acl_access"]?.hasPrefix("02000000") == true })
        #expect(expected.contains { $0.xattrs["system.posix_acl_default"]?.hasPrefix("02000000") == true })
        #expect(expected.filter { $0.path.hasPrefix("many/") }.count == 3000)
        // 128-byte inodes (ext2 here) have no room for nanoseconds; every other field must match.
        let ignoring: Set<Manifest.Field> = Ext4Images.keepsNanoseconds(image) ? [] : [.mtimeNanoseconds]
        let diffs = Manifest.differences(expected: expected, actual: actual.filter { $0.path != "lost+found" }, ignoring: ignoring)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }

    private func checkTruncatedSparseFile(_ reader: Ext4Reader, image: String) throws {
        let stat = Ext4DebugfsStat(String(decoding: try TestImages.run(["debugfs", "-R", "stat /var/sparse.img", try TestImages.path(image)]), as: UTF8.self))
        let inode = try #require(try reader.lookup("/var/sparse.img"))
        let file = try reader.openFile(inode)
        #expect(stat["Size:"] == String(file.size))
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        var nonZero: [UInt64: UInt8] = [:]
        let zeros = [UInt8](repeating: 0, count: buffer.count)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
            if n == 0 { break }
            let zero = zeros.withUnsafeBytes { z in
                buffer.withUnsafeBytes { b in
                    guard let bp = b.baseAddress, let zp = z.baseAddress else { return false }
                    return memcmp(bp, zp, n) == 0
                }
            }
            if !zero {
                for i in 0..<n where buffer[i] != 0 { nonZero[offset + UInt64(i)] = buffer[i] }
            }
            offset += UInt64(n)
        }
        #expect(offset == file.size)
        var want: [UInt64: UInt8] = [:]
        for (i, b) in "start".utf8.enumerated() { want[UInt64(i)] = b }
        for (i, b) in "middle".utf8.enumerated() { want[(512 << 20) + UInt64(i)] = b }
        #expect(nonZero == want)
    }

    @Test("the kernel's view of a read-only loop mount is the reader's view", arguments: Ext4Images.all)
    func matchesKernelMount(image: String) throws {
        guard TestImages.canLoopMount("ext4") else { return }   // needs root and the ext4 driver
        let path = try TestImages.path(image)
        let mountpoint = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-ext4-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mountpoint) }
        try TestImages.run(["mount", "-t", "ext4", "-o", "loop,ro,noload", path, mountpoint])
        defer { _ = try? TestImages.run(["umount", "-d", mountpoint]) }
        let kernel = try Manifest.ofDirectory(mountpoint)
        let (actual, problems) = try Manifest.of(try Ext4Images.open(image))
        #expect(problems.isEmpty, "\(problems)")
        #expect(kernel.count > 3000)
        let diffs = Manifest.differences(expected: kernel, actual: actual)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }

    /// `debugfs -R "stat PATH"` is libext2fs's own tool, but parses the inode independently of
    /// this reader's decoder (offsets, uid/gid high halves, epoch bits).
    @Test("inode fields agree with debugfs stat", arguments: Ext4Images.all)
    func agreesWithDebugfs(image: String) throws {
        let reader = try Ext4Images.open(image)
        let path = try TestImages.path(image)
        for file in ["/etc/hostname", "/bin/su", "/usr/bin/wall", "/home/user/notes.txt", "/var/empty/nobody.txt",
                     "/bin/sh", "/dev/sda1", "/dev/bigdev", "/tmp", "/etc/long-link", "/var/sparse.img"] {
            let inode = try #require(try reader.lookup(file), "\(file)")
            let meta = try reader.metadata(of: inode)
            let stat = String(decoding: try TestImages.run(["debugfs", "-R", "stat \(file)", path]), as: UTF8.self)
            let fields = Ext4DebugfsStat(stat)
            #expect(fields["Inode:"] == String(inode), "\(file)")
            #expect(fields["Mode:"].flatMap { UInt16($0, radix: 8) } == meta.permissions, "\(file)")
            #expect(fields["User:"] == String(meta.uid), "\(file)")
            #expect(fields["Group:"] == String(meta.gid), "\(file)")
            #expect(fields["Links:"] == String(meta.linkCount), "\(file)")
            if meta.type == .regular { #expect(fields["Size:"] == String(meta.size), "\(file)") }
            let mtime = try #require(fields["mtime:"], "\(file)")
            let parts = mtime.dropFirst(2).split(separator: ":")
            let seconds = try #require(UInt32(parts[0], radix: 16))
            #expect(Int64(Int32(bitPattern: seconds)) == meta.mtime.seconds, "\(file)")
            if parts.count > 1, let extra = UInt32(parts[1], radix: 16) {
                #expect(extra >> 2 == meta.mtime.nanoseconds, "\(file)")
            } else {
                #expect(meta.mtime.nanoseconds == 0, "\(file)")
            }
        }
        let hostname = try #require(try reader.lookup("/etc/hostname"))
        #expect(try reader.metadata(of: hostname).mtime == Timestamp(seconds: 1_600_000_000,
                                                                    nanoseconds: Ext4Images.keepsNanoseconds(image) ? 123_456_789 : 0))
    }

    @Test("a 3000-entry htree directory lists completely", arguments: Ext4Images.all)
    func htreeDirectory(image: String) throws {
        let path = try TestImages.path(image)
        let htree = String(decoding: try TestImages.run(["debugfs", "-R", "htree /many", path]), as: UTF8.self)
        #expect(htree.contains("Root node dump"))   // the directory really is hashed
        let reader = try Ext4Images.open(image)
        let many = try #require(try reader.lookup("/many"))
        let names = try reader.directoryEntries(of: many).map { String(decoding: $0.name, as: UTF8.self) }
        #expect(names.count == 3000)
        #expect(Set(names).count == 3000)
        #expect(names.contains("entry-with-a-longish-name-2999"))
        let file = try #require(try reader.lookup("/many/entry-with-a-longish-name-0042"))
        #expect(try reader.readSmallFile(file) == Array("0042\n".utf8))
    }

    @Test("inline data keeps small files, directories and symlinks inside the inode")
    func inlineData() throws {
        let path = try TestImages.path("fs-ext4-inline.img")
        let reader = try Ext4Images.open("fs-ext4-inline.img")
        let stat = String(decoding: try TestImages.run(["debugfs", "-R", "stat /etc/fstab", path]), as: UTF8.self)
        #expect(stat.contains("Size of inline data"))   // the fixture really uses inline data
        let fstab = try #require(try reader.lookup("/etc/fstab"))
        #expect(try reader.readSmallFile(fstab) == Array("# fstab\n".utf8))
        #expect(try reader.metadata(of: fstab).xattrs.isEmpty)   // system.data is not an attribute
        let link = try #require(try reader.lookup("/bin/ash"))
        #expect(try reader.metadata(of: link).symlinkTarget == Array("/usr/bin/busybox".utf8))
    }

    @Test("variant, label and block size come from the superblock")
    func superblock() throws {
        let expected: [String: (String, Int)] = ["fs-ext4.img": ("ext4", 4096), "fs-ext4-inline.img": ("ext4", 4096),
                                                 "fs-ext4-bigalloc.img": ("ext4", 4096),
                                                 "fs-ext2.img": ("ext2", 1024), "fs-ext3.img": ("ext3", 2048)]
        for (image, (variant, blockSize)) in expected {
            let reader = try Ext4Images.open(image)
            #expect(reader.formatName == "ext4")
            #expect(reader.variant == variant, "\(image)")
            #expect(reader.blockSize == blockSize, "\(image)")
            #expect(reader.label == String(image.dropLast(4)), "\(image)")
            #expect(!reader.needsRecovery)
        }
    }

    @Test("needs_recovery over a clean journal (s_start 0): reported, nothing to replay, no warning")
    func needsRecovery() throws {
        let image = try FileSource(path: TestImages.path("fs-ext3.img"))
        // s_feature_incompat is at superblock offset 0x60; 0x4 is INCOMPAT_RECOVER. fs-ext3 has
        // no metadata_csum, so the superblock stays valid.
        let incompat = try image.bytes(at: 1024 + 0x60, count: 1)[0]
        #expect(incompat & 0x4 == 0)
        let dirty = Ext4PatchedSource(base: image, patches: [(1024 + 0x60, [incompat | 0x4])])
        let reader = try Ext4Reader(source: dirty, name: "dirty")
        #expect(reader.needsRecovery)
        #expect(reader.journal == JournalReplay())
        #expect(!(try Ext4Images.open("fs-ext3.img")).needsRecovery)
        #expect((try Ext4Images.open("fs-ext3.img")).journal == nil)
        let (entries, problems) = try Manifest.of(reader, readContents: false)
        #expect(problems.isEmpty)
        #expect(entries.count > 3000)
    }

    @Test("a filesystem inside a partition of a bigger disk opens through a slice")
    func partitionSlice() throws {
        let image = try FileSource(path: TestImages.path("fs-ext2.img"))
        let offset: UInt64 = 3 << 20
        let disk = Ext4ShiftedSource(base: image, leadingZeros: offset)
        let partition = try disk.slice(offset: offset, length: image.size, name: "disk partition 2")
        let reader = try Ext4Reader(source: partition)
        #expect(reader.sourceName == "disk partition 2")
        let (viaSlice, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty)
        let (direct, _) = try Manifest.of(try Ext4Images.open("fs-ext2.img"))
        #expect(Manifest.differences(expected: direct, actual: viaSlice).isEmpty)
        // Without the offset there is no filesystem at the start of the disk.
        #expect(throws: FWError.self) { try Ext4Reader(source: disk, name: "whole disk") }
    }
}

@Suite("Ext4Reader: damaged images")
struct Ext4DamagedImageTests {
    @Test("a zeroed superblock magic is a clear error naming the source")
    func zeroedMagic() throws {
        let image = try FileSource(path: TestImages.path("fs-ext4.img"))
        // s_magic is at byte 0x38 of the superblock, which starts at byte 1024.
        let source = Ext4PatchedSource(base: image, patches: [(1024 + 0x38, [0, 0])])
        let partition = try source.slice(offset: 0, length: source.size, place: FWError.Place(disk: "disk.img", partition: "partition 3"))
        let error = try #require(throws: FWError.self) { try Ext4Reader(source: partition, name: partition.name) }
        #expect(error.code == .corrupt)
        #expect(error.disk == "disk.img" && error.partition == "partition 3", "\(error)")
        #expect(error.description.hasPrefix("disk.img partition 3: "), "\(error)")
        #expect(error.description.components(separatedBy: "disk.img").count == 2, "\(error)")
        #expect(error.message.lowercased().contains("magic"), "\(error)")
    }

    @Test("a corrupted inode becomes a walk problem and the walk goes on")
    func corruptInodeTable() throws {
        let path = try TestImages.path("fs-ext4.img")
        let image = try FileSource(path: path)
        // Where debugfs says the inodes of /etc/hostname and /usr/lib live.
        var patches: [(UInt64, [UInt8])] = []
        for file in ["/etc/hostname", "/usr/lib"] {
            let offset = try inodeOffset(file, image: path)
            patches.append((offset, [UInt8](repeating: 0xA5, count: 64)))
        }
        let reader = try Ext4Reader(source: Ext4PatchedSource(base: image, patches: patches), name: "damaged")
        let (entries, problems) = try Manifest.of(reader)
        let paths = Set(problems.map(\.path))
        #expect(paths == ["/etc/hostname", "/usr/lib"], "\(problems)")
        for problem in problems {
            #expect(problem.error.disk == "damaged" && problem.error.partition == nil)
            #expect(problem.error.message.contains("inode"), "\(problem)")
            #expect(problem.error.message.lowercased().contains("checksum"), "\(problem)")
        }
        // Everything else is still there: the rest of /etc, /usr/bin, the 3000 htree entries.
        #expect(entries.contains { $0.path == "etc/passwd" })
        #expect(entries.contains { $0.path == "usr/bin/ping" })
        #expect(!entries.contains { $0.path.hasPrefix("usr/lib/") })
        #expect(entries.filter { $0.path.hasPrefix("many/") }.count == 3000)
    }

    @Test("a truncated image gives clear errors, never a crash", arguments: [UInt64(512), 4 << 20])
    func truncated(length: UInt64) throws {
        let image = try FileSource(path: TestImages.path("fs-ext4.img"))
        let source = try image.slice(offset: 0, length: length, name: "truncated.img")
        let reader: Ext4Reader
        do {
            reader = try Ext4Reader(source: source)
        } catch let error as FWError {
            #expect(error.disk == "truncated.img")
            #expect(error.message.contains("past the end") || error.message.lowercased().contains("short read"), "\(error)")
            return
        }
        var walk = TreeWalk(reader)
        var count = 0
        var contentErrors: [FWError] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while let entry = walk.next() {
            count += 1
            guard entry.metadata.type == .regular else { continue }
            do {
                let file = try reader.openFile(entry.metadata.inode)
                while try buffer.withUnsafeMutableBytes({ try file.read(into: $0) }) > 0 {}
            } catch let error as FWError {
                contentErrors.append(error)
            }
        }
        let errors = walk.problems.map(\.error) + contentErrors
        // The image is 128 MiB; whatever lies past the cut must be reported, naming the source.
        #expect(!errors.isEmpty)
        for error in errors {
            #expect(error.disk == "truncated.img" && error.partition == nil, "\(error)")
            #expect(error.message.contains("past the end"), "\(error)")
        }
    }

    @Test("a file whose blocks lie past the end of a truncated image fails naming the source")
    func truncatedFile() throws {
        let path = try TestImages.path("fs-ext4.img")
        // debugfs: the physical block holding byte 512 MiB of /var/sparse.img ("middle").
        let bmap = String(decoding: try TestImages.run(["debugfs", "-R", "bmap /var/sparse.img \((512 << 20) / 4096)", path]), as: UTF8.self)
        let block = try #require(UInt64(bmap.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(block > 0)
        let image = try FileSource(path: path)
        let reader = try Ext4Reader(source: try image.slice(offset: 0, length: block * 4096, name: "cut.img"))
        let inode = try #require(try reader.lookup("/var/sparse.img"))
        let file = try reader.openFile(inode)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total: UInt64 = 0
        let error = try #require(throws: FWError.self) {
            while true {
                let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
                if n == 0 { break }
                total += UInt64(n)
            }
        }
        #expect(total == 512 << 20)   // everything before the missing block was read
        // The image once: the slice is the image here, there is no partition.
        #expect(error.disk == "cut.img" && error.partition == nil, "\(error)")
        #expect(error.message.contains("inode \(inode)") && error.message.contains("past the end"), "\(error)")
    }

    /// Byte offset of a file's inode from `debugfs -R "imap PATH"`: "located at block B, offset 0xO".
    private func inodeOffset(_ file: String, image: String) throws -> UInt64 {
        let text = String(decoding: try TestImages.run(["debugfs", "-R", "imap \(file)", image]), as: UTF8.self)
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," })
        let blockIndex = try #require(words.lastIndex(of: "block"))
        let offsetIndex = try #require(words.lastIndex(of: "offset"))
        let block = try #require(UInt64(words[blockIndex + 1]))
        let offset = try #require(UInt64(words[offsetIndex + 1].dropFirst(2), radix: 16))
        return block * 4096 + offset
    }
}

/// The `key value` pairs of `debugfs stat` output ("Inode: 12   Type: regular    Mode:  0644").
struct Ext4DebugfsStat {
    private var values: [String: String] = [:]

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            for (i, word) in words.enumerated() where word.hasSuffix(":") && i + 1 < words.count {
                if values[word] == nil { values[word] = words[i + 1] }
            }
        }
    }

    subscript(key: String) -> String? { values[key] }
}

/// A source with some bytes replaced: damaged images without copying the fixture.
final class Ext4PatchedSource: ByteSource {
    let base: any ByteSource
    let patches: [(UInt64, [UInt8])]
    var size: UInt64 { base.size }
    var name: String { base.name }

    init(base: any ByteSource, patches: [(UInt64, [UInt8])]) {
        self.base = base
        self.patches = patches
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try base.read(at: offset, into: buffer)
        for (start, bytes) in patches {
            for (i, byte) in bytes.enumerated() {
                let at = start + UInt64(i)
                if at >= offset, at < offset + UInt64(n) { buffer[Int(at - offset)] = byte }
            }
        }
        return n
    }
}

/// A disk whose first `leadingZeros` bytes are zeros followed by `base`: a filesystem image
/// placed inside a partition.
final class Ext4ShiftedSource: ByteSource {
    let base: any ByteSource
    let leadingZeros: UInt64
    var size: UInt64 { base.size + leadingZeros }
    var name: String { "shifted \(base.name)" }

    init(base: any ByteSource, leadingZeros: UInt64) {
        self.base = base
        self.leadingZeros = leadingZeros
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size else { return 0 }
        let count = Int(min(UInt64(buffer.count), size - offset))
        var done = 0
        if offset < leadingZeros {
            let zeros = Int(min(UInt64(count), leadingZeros - offset))
            UnsafeMutableRawBufferPointer(rebasing: buffer[0..<zeros]).initializeMemory(as: UInt8.self, repeating: 0)
            done = zeros
        }
        while done < count {
            let n = try base.read(at: offset + UInt64(done) - leadingZeros,
                                  into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<count]))
            if n == 0 { break }
            done += n
        }
        return done
    }
}

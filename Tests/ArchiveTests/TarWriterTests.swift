@testable import Archive
import DiskImage
import FileSystems
import Foundation
import TestSupport
import Testing

/// Helpers shared by the archive tests.
enum Scratch {
    /// A fresh directory under the system temp dir, removed by the caller.
    static func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-archive-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ bytes: [UInt8], to url: URL) throws {
        try Data(bytes).write(to: url)
    }

    static var tarManifestScript: String {
        TestImages.repositoryRoot.appendingPathComponent("images/tar_manifest.py").path
    }

    /// Python tarfile's view of an archive, in manifest.py's format (also checks the conventions).
    static func tarManifest(_ path: String) throws -> [ManifestEntry] {
        let data = try TestImages.run(["python3", tarManifestScript, "--check", path])
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8))
        }
    }

    /// A reader's manifest (TestSupport's `Manifest.of`) as the Python scripts print it: sockets
    /// left out (tar cannot hold them) and non-UTF-8 path bytes written as Python's
    /// "backslashreplace" does ("\\xff"), where `Manifest.of` shows replacement characters.
    static func expectedManifest(_ reader: any FileSystemReader) throws -> [ManifestEntry] {
        var entries = try Manifest.of(reader).entries
        var walk = TreeWalk(reader)
        var index = 0
        var firstOfInode: [String: String] = [:]
        while let item = walk.next() {
            guard index < entries.count else { break }
            let python = item.path.isEmpty ? "." : pythonText(item.path)
            if entries[index].path != python { firstOfInode[entries[index].path] = python }
            entries[index].path = python
            index += 1
        }
        for i in entries.indices {
            if let link = entries[i].link, let fixed = firstOfInode[link] { entries[i].link = fixed }
        }
        return entries.filter { $0.type != "socket" }
    }

    /// Python's `bytes.decode("utf-8", "backslashreplace")`.
    static func pythonText(_ bytes: [UInt8]) -> String {
        var out = ""
        var rest = bytes[...]
        while !rest.isEmpty {
            // the longest valid UTF-8 prefix, then one escaped byte
            var end = rest.endIndex
            while end > rest.startIndex, String(validating: rest[rest.startIndex..<end], as: UTF8.self) == nil { end -= 1 }
            out += String(decoding: rest[rest.startIndex..<end], as: UTF8.self)
            rest = rest[end...]
            if let b = rest.first {
                out += "\\x" + String(b, radix: 16).leftPadded(2)
                rest = rest.dropFirst()
            }
        }
        return out
    }

    /// `reader` archived into `dir/out.tar`: the file, its bytes and the archiver's summary.
    static func tarFile(of reader: any FileSystemReader, in dir: URL) throws -> (path: URL, bytes: [UInt8], summary: ArchiveSummary) {
        let (bytes, summary) = try tar(of: reader)
        let path = dir.appendingPathComponent("out.tar")
        try write(bytes, to: path)
        return (path, bytes, summary)
    }

    /// The archive of a reader as tar bytes (plain), and the archiver's report.
    static func tar(of reader: any FileSystemReader, options: TarOptions = TarOptions()) throws -> ([UInt8], ArchiveSummary) {
        let sink = MemorySink()
        let tar = TarWriter(sink: sink, options: options)
        let report = try Archiver.archive(reader, into: tar)
        try tar.finish()
        return (sink.bytes, report)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

@Suite("Tar writer")
struct TarWriterTests {
    /// The expected view: the reader's own manifest without sockets (tar cannot hold them).
    private func expected(_ reader: any FileSystemReader) throws -> [ManifestEntry] {
        try Scratch.expectedManifest(reader)
    }

    @Test("Python tarfile reads back every field of every entry kind")
    func pythonTarfileRoundTrip() throws {
        let tree = sampleTree()
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (path, bytes, report) = try Scratch.tarFile(of: tree, in: dir)

        let actual = try Scratch.tarManifest(path.path)
        let diffs = Manifest.differences(expected: try expected(tree), actual: actual)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
        #expect(report.problems.map(\.path) == ["/srv/socket"])
        #expect(report.hardlinks == 2)
        #expect(bytes.count % 512 == 0)
        #expect(bytes.suffix(1024).allSatisfy { $0 == 0 })
    }

    @Test("bsdtar lists every member with its mode, owner, size and link")
    func bsdtarListing() throws {
        let tree = sampleTree()
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (path, _, _) = try Scratch.tarFile(of: tree, in: dir)
        let listing = String(decoding: try TestImages.run(["bsdtar", "-tvnf", path.path]), as: UTF8.self)
        let lines = listing.split(separator: "\n").map(String.init)
        let expectedCount = try expected(tree).count
        #expect(lines.count == expectedCount)
        func line(_ name: String) -> [String] {
            lines.first { $0.hasSuffix(" " + name) || $0.contains(" " + name + " ") }?.split(separator: " ", omittingEmptySubsequences: true).map(String.init) ?? []
        }
        #expect(line("./").first == "drwxr-xr-x")
        #expect(line("./bin/su").first == "-rwsr-xr-x")
        #expect(line("./usr/bin/wall").first == "-rwxr-sr-x")
        #expect(line("./tmp/").first == "drwxrwxrwt")
        #expect(line("./dev/null").first == "crw-rw-rw-")
        #expect(line("./dev/null").contains("1,3"))
        #expect(line("./dev/bigdev").contains("300,70000"))
        #expect(line("./dev/sda1").first == "brw-rw----")
        #expect(line("./srv/fifo").first == "prw-r--r--")
        #expect(line("./home/big-ids").contains("3000000"))
        #expect(line("./home/big-ids").contains("4000000000"))
        #expect(line("./home/user/notes.txt").contains("1000"))
        #expect(lines.contains { $0.hasSuffix("./usr/bin/busybox link to ./bin/sh") })
        #expect(lines.contains { $0.contains("./etc/long-link -> " + String(repeating: "/very/long/target", count: 12) + "/end") })
        #expect(lines.contains { $0.hasSuffix("./etc/" + String(repeating: "n", count: 255)) })
        #expect(lines.contains { $0.hasSuffix("/directory30/file") })
        #expect(line("./usr/lib/big.bin").contains("3000001"))
    }

    @Test("GNU tar and bsdtar extract the archive to the same tree (kernel view, as root)",
          arguments: ["gnu", "bsd"])
    func extractionMatches(tool: String) throws {
        guard getuid() == 0 else { return }   // devices, owners and trusted.* xattrs need root
        let tree = sampleTree()
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (path, _, _) = try Scratch.tarFile(of: tree, in: dir)
        let root = dir.appendingPathComponent("root")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        if tool == "gnu" {
            try TestImages.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-p", "-xf", path.path, "-C", root.path])
        } else {
            try TestImages.run(["bsdtar", "--xattrs", "--numeric-owner", "-p", "-xf", path.path, "-C", root.path])
        }
        // The socket is not in the archive; the root directory's own fields depend on the
        // extractor's treatment of "./", so only its presence is compared.
        var want = try expected(tree)
        var got = try Manifest.ofDirectory(root.path)
        want[0].mtime = 0; want[0].mtime_ns = 0
        got[0].mtime = 0; got[0].mtime_ns = 0
        let diffs = Manifest.differences(expected: want, actual: got)
        #expect(diffs.isEmpty, "\(tool): \(diffs.joined(separator: "\n"))")
    }

    @Test("Header fields: ustar numbers, PAX for what does not fit, fixed PAX header names")
    func headerFields() throws {
        let sink = MemorySink()
        let tar = TarWriter(sink: sink)
        try tar.append(TarEntry(path: [], kind: .directory, permissions: 0o755, mtime: Timestamp(seconds: 1_700_000_000)))
        try tar.append(TarEntry(path: Array("a".utf8), kind: .regular, permissions: 0o4755, uid: 1000, gid: 65534,
                                mtime: Timestamp(seconds: 1_700_000_000)))
        try tar.finish()
        #expect(sink.finished)
        let b = sink.bytes
        #expect(b.count == 4 * 512)
        #expect(Array(b[0..<3]) == Array("./\0".utf8))
        #expect(b[156] == 0x35)
        let h = Array(b[512..<1024])
        #expect(String(decoding: h[0..<4], as: UTF8.self) == "./a\0")
        #expect(String(decoding: h[100..<108], as: UTF8.self) == "0004755\0")
        #expect(String(decoding: h[108..<116], as: UTF8.self) == "0001750\0")
        #expect(String(decoding: h[116..<124], as: UTF8.self) == "0177776\0")
        #expect(String(decoding: h[257..<265], as: UTF8.self) == "ustar\000")
        #expect(h[265..<329].allSatisfy { $0 == 0 })   // uname, gname empty
        // checksum: sum of the header with the field as spaces
        var copy = h
        for i in 148..<156 { copy[i] = 0x20 }
        let sum = copy.reduce(0) { $0 + Int($1) }
        #expect(Int(String(decoding: h[148..<154], as: UTF8.self), radix: 8) == sum)

        // A long name gets a PAX header named ./PaxHeaders/<base>
        let sink2 = MemorySink()
        let tar2 = TarWriter(sink: sink2)
        let long = Array(String(repeating: "x", count: 150).utf8)
        try tar2.append(TarEntry(path: long, kind: .fifo, permissions: 0o644))
        try tar2.finish()
        #expect(sink2.bytes[156] == 0x78)
        #expect(String(decoding: sink2.bytes[0..<13], as: UTF8.self) == "./PaxHeaders/")
    }

    @Test("PAX record lengths count themselves, across digit boundaries")
    func paxRecordLengths() throws {
        for size in [0, 1, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 990, 991, 992, 993, 994, 995, 996, 997, 998, 999, 1000, 9990, 9995] {
            var r = PaxRecords()
            r.add("k", [UInt8](repeating: 0x61, count: size))
            let space = try #require(r.bytes.firstIndex(of: 0x20))
            let length = Int(String(decoding: r.bytes[0..<space], as: UTF8.self))
            #expect(length == r.bytes.count, "value of \(size) bytes")
        }
        #expect(PaxRecords.time(Timestamp(seconds: 1_600_000_000, nanoseconds: 123_456_789)) == "1600000000.123456789")
        #expect(PaxRecords.time(Timestamp(seconds: 5, nanoseconds: 1)) == "5.000000001")
        #expect(PaxRecords.time(Timestamp(seconds: -2, nanoseconds: 500_000_000)) == "-1.500000000")
        #expect(PaxRecords.time(Timestamp(seconds: -1, nanoseconds: 0)) == "-1")
    }

    @Test("Negative and huge mtimes go through PAX; GNU tar reads them")
    func outOfRangeTimes() throws {
        let sink = MemorySink()
        let tar = TarWriter(sink: sink)
        try tar.append(TarEntry(path: [], kind: .directory, permissions: 0o755))
        try tar.append(TarEntry(path: Array("neg".utf8), kind: .fifo, permissions: 0o644, mtime: Timestamp(seconds: -2, nanoseconds: 500_000_000)))
        try tar.append(TarEntry(path: Array("far".utf8), kind: .fifo, permissions: 0o644, mtime: Timestamp(seconds: 1 << 40)))
        try tar.finish()
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.tar")
        try Scratch.write(sink.bytes, to: path)
        let m = try Scratch.tarManifest(path.path)
        #expect(m.map(\.path) == [".", "neg", "far"])
        #expect(m[1].mtime == -2 && m[1].mtime_ns == 500_000_000)
        #expect(m[2].mtime == 1 << 40)
        // GNU tar extracts -1.5 s as such (its listing and libarchive show -0.5 s; POSIX reads
        // the record as the decimal number it is).
        let x = dir.appendingPathComponent("x")
        try FileManager.default.createDirectory(at: x, withIntermediateDirectories: true)
        try TestImages.run(["tar", "-xf", path.path, "-C", x.path])
        let stamp = String(decoding: try TestImages.run(["stat", "-c", "%y", x.appendingPathComponent("neg").path]), as: UTF8.self)
        #expect(stamp.hasPrefix("1969-12-31 23:59:58.500000000"))
    }

    @Test("Short contents are padded with zeros, long contents cut; both reported")
    func contentLengthMismatch() throws {
        let t = TestTree()
        let short = t.add("short", .regular, perm: 0o644, content: [UInt8](repeating: 0x41, count: 1000))
        let long = t.add("long", .regular, perm: 0o644, content: [UInt8](repeating: 0x42, count: 600))
        t.streamOverride[short] = [UInt8](repeating: 0x41, count: 300)
        t.streamOverride[long] = [UInt8](repeating: 0x42, count: 2000)
        let (bytes, report) = try Scratch.tar(of: t)
        #expect(report.problems.map(\.path) == ["/long", "/short"])
        #expect(report.problems[0].message.contains("cut"))
        #expect(report.problems[1].message.contains("300 of 1000"))
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.tar")
        try Scratch.write(bytes, to: path)
        let m = try Scratch.tarManifest(path.path)
        let shortEntry = try #require(m.first { $0.path == "short" })
        let longEntry = try #require(m.first { $0.path == "long" })
        #expect(shortEntry.size == 1000)
        #expect(shortEntry.crc32 == CRC32.checksum([UInt8](repeating: 0x41, count: 300) + [UInt8](repeating: 0, count: 700)))
        #expect(longEntry.size == 600)
        #expect(longEntry.crc32 == CRC32.checksum([UInt8](repeating: 0x42, count: 600)))
    }

    @Test("Sockets are refused by the entry constructor")
    func socketsRefused() {
        let m = Metadata(type: .socket, permissions: 0o755, uid: 0, gid: 0, size: 0, mtime: Timestamp(seconds: 0), inode: 9)
        #expect(throws: FWError.self) { try TarEntry(path: Array("s".utf8), metadata: m) }
    }

    @Test("atime and ctime only when asked")
    func accessTimesOptIn() throws {
        let entry = TarEntry(path: Array("f".utf8), kind: .fifo, permissions: 0o644, mtime: Timestamp(seconds: 10),
                             atime: Timestamp(seconds: 20), ctime: Timestamp(seconds: 30))
        let plain = MemorySink()
        let w1 = TarWriter(sink: plain)
        try w1.append(entry)
        try w1.finish()
        #expect(plain.bytes[156] == 0x36)   // no PAX header
        let withTimes = MemorySink()
        let w2 = TarWriter(sink: withTimes, options: TarOptions(includeAccessAndChangeTimes: true))
        try w2.append(entry)
        try w2.finish()
        #expect(withTimes.bytes[156] == 0x78)
        let body = String(decoding: withTimes.bytes[512..<1024], as: UTF8.self)
        #expect(body.contains("atime=20\n") && body.contains("ctime=30\n"))
    }

    @Test("Same tree, same bytes")
    func deterministic() throws {
        let (a, _) = try Scratch.tar(of: sampleTree())
        let (b, _) = try Scratch.tar(of: sampleTree())
        #expect(a == b)
    }
}

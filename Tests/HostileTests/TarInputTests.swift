import Assembly
import DiskImage
import Ext4Image
import FileSystemTar
import FileSystems
import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 22, hostile tar input: tars built by Python's tarfile (the same bytes a layer blob,
/// `--add-tar` or an OVA holds), read by `TarReader` and written by `Ext4ImageWriter`.
@Suite("Hostile tar input: TarReader and the ext4 writer")
struct TarInputTests {
    /// Runs `script` (Python, with `tarfile`, `io` and `t`, an open PAX tar) into a new tar file;
    /// returns its path in a fresh scratch folder.
    static func tar(_ body: String, format: String = "PAX") throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-tarin-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/in.tar"
        let script = """
        import io, sys, tarfile
        def entry(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, pax=None, uid=0, gid=0, mtime=1700000000):
            i = tarfile.TarInfo(name); i.type = kind; i.size = len(data); i.linkname = link; i.mode = mode
            i.uid = uid; i.gid = gid; i.mtime = mtime
            if pax: i.pax_headers = pax
            t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        with tarfile.open(sys.argv[1], "w", format=tarfile.\(format)_FORMAT) as t:
        \(body.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        """
        try TestImages.run(["python3", "-c", script, path])
        return path
    }

    static func reader(_ path: String, whiteouts: Bool = false) throws -> TarReader {
        try TarReader(source: try FileSource(path: path), name: path, ociWhiteouts: whiteouts)
    }

    /// CPU seconds of the calling thread: the indexing's own cost, which other tests running at
    /// the same time (the corrupted-disk corpus, two CLI runs at once) do not inflate as they do
    /// the wall clock.
    static func threadSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    static func cleanup(_ path: String) {
        try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
    }

    // MARK: linear indexing

    /// 10,000 nested directories index in well under 10 s of CPU (120 s for 15,000 before:
    /// every member's path was split and looked up from the root).
    @Test(.timeLimit(.minutes(3))) func tenThousandNestedDirectoriesIndexQuickly() throws {
        // GNU long names ('L' members): Python writes them faster than pax records.
        let path = try Self.tar("""
        p = ""
        for i in range(10000):
            p = p + ("/" if p else "") + "d"
            entry(p, tarfile.DIRTYPE, mode=0o700)
        entry(p + "/leaf", data=b"deep")
        """, format: "GNU")
        defer { Self.cleanup(path) }
        let start = Self.threadSeconds()
        let r = try Self.reader(path)
        #expect(Self.threadSeconds() - start < 10, "indexing took \(Self.threadSeconds() - start) s of CPU")
        var inode = r.rootInode
        for _ in 0..<10_000 {
            let next = try #require(try r.entry(named: [0x64], in: inode))
            inode = next.inode
            #expect(!r.isImpliedDirectory(inode))
        }
        let leaf = try #require(try r.entry(named: Array("leaf".utf8), in: inode))
        #expect(try r.metadata(of: leaf.inode).size == 4)
        #expect(r.problems.isEmpty)
    }

    /// 100,000 members in one directory: indexed and looked up by name in well under 10 s.
    @Test(.timeLimit(.minutes(3))) func aHundredThousandMembersInOneDirectory() throws {
        let path = try Self.tar("""
        entry("w", tarfile.DIRTYPE, mode=0o755)
        for i in range(100000):
            entry("w/f%d" % i)
        """)
        defer { Self.cleanup(path) }
        let start = Self.threadSeconds()
        let r = try Self.reader(path)
        let w = try #require(try r.entry(named: [0x77], in: r.rootInode))
        #expect(try r.directoryEntries(of: w.inode).count == 100_000)
        for i in stride(from: 0, to: 100_000, by: 997) { #expect(try r.entry(named: Array("f\(i)".utf8), in: w.inode) != nil) }
        #expect(Self.threadSeconds() - start < 10, "took \(Self.threadSeconds() - start) s of CPU")
    }

    // MARK: what cannot be placed

    /// `..` escapes (in the name, a pax path, a GNU long name), dangling hardlinks and members
    /// below a symlink are not written, and each reason is one line naming the first paths with
    /// a count; the symlink stays a symlink; an absolute name is placed below the root.
    @Test func membersThatCannotBePlacedAreCountedAndNamed() throws {
        let path = try Self.tar("""
        entry("../escape")
        entry("ok", pax={"path": "a/../../x"})
        entry("lnk", tarfile.SYMTYPE, link="/etc")
        entry("lnk/x")
        entry("lnk/y/z")
        entry("hard", tarfile.LNKTYPE, link="missing")
        entry("/abs/file", data=b"abs")
        """)
        defer { Self.cleanup(path) }
        let r = try Self.reader(path)
        #expect(r.skipped.notWritten == 5)
        #expect(r.problems.contains("2 entries not written (a '..' component or a NUL byte in the path): ../escape, a/../../x"), "\(r.problems)")
        #expect(r.problems.contains { $0.hasPrefix("2 entries not written (below a symlink") && $0.hasSuffix(": lnk/x, lnk/y/z") }, "\(r.problems)")
        #expect(r.problems.contains { $0.hasPrefix("1 entry not written (a hardlink to no earlier file") && $0.hasSuffix(": hard") })
        let lnk = try #require(try r.entry(named: Array("lnk".utf8), in: r.rootInode))
        #expect(try r.metadata(of: lnk.inode).type == .symlink)
        #expect(try r.lookup("/abs/file") != nil)
    }

    /// Past five paths a reason says how many more.
    @Test func aReasonNamesFivePathsThenACount() throws {
        let path = try Self.tar("""
        for i in range(12):
            entry("../e%d" % i)
        """)
        defer { Self.cleanup(path) }
        let r = try Self.reader(path)
        #expect(r.problems == ["12 entries not written (a '..' component or a NUL byte in the path): ../e0, ../e1, ../e2, ../e3, ../e4 and 7 more"])
    }

    /// A uid or gid beyond 32 bits is never truncated into another owner (uid 2^32 + 5 was 5,
    /// gid 2^40 was 0, root): the member is skipped. A time beyond ext4's range is clamped (a
    /// pax mtime of -10^12 was written as the year 2401) and counted.
    @Test func ownersBeyond32BitsAreSkippedAndTimesClamped() throws {
        let path = try Self.tar("""
        entry("bigu", pax={"uid": "4294967301"})
        entry("bigg", pax={"gid": str(2**40)})
        entry("junk", pax={"uid": "99999999999999999999999"})
        entry("nobody", pax={"uid": "4294967295"})
        entry("old", pax={"mtime": "-1000000000000"})
        entry("new", pax={"mtime": "99999999999"})
        entry("frac", pax={"mtime": "-1.5"})
        """)
        defer { Self.cleanup(path) }
        let r = try Self.reader(path)
        for name in ["bigu", "bigg", "junk"] { #expect(try r.lookup("/" + name) == nil, "\(name)") }
        #expect(try r.metadata(of: try #require(try r.lookup("/nobody"))).uid == UInt32.max)
        #expect(try r.metadata(of: try #require(try r.lookup("/old"))).mtime == Timestamp(seconds: TarLimits.earliestTime))
        #expect(try r.metadata(of: try #require(try r.lookup("/new"))).mtime == Timestamp(seconds: TarLimits.latestTime))
        #expect(try r.metadata(of: try #require(try r.lookup("/frac"))).mtime == Timestamp(seconds: -2, nanoseconds: 500_000_000))
        #expect(r.skipped.counts[.ownerBeyond32Bits] == 3)
        #expect(r.skipped.counts[.timeClamped] == 2)
        #expect(r.skipped.notWritten == 3)
    }

    // MARK: implied directories

    /// A layer holding only tmp/x over a layer whose /tmp is 01777: the merged /tmp keeps 01777
    /// and its time (the upper /tmp is implied, 0755 with time 0, and must not override).
    @Test func anImpliedDirectoryKeepsTheMetadataBelowInAnOverlay() throws {
        let lower = try Self.tar("""
        entry("tmp", tarfile.DIRTYPE, mode=0o1777, mtime=1600000000)
        """)
        let upper = try Self.tar("""
        entry("tmp/x", data=b"x")
        entry("new/y", data=b"y")
        """)
        defer { Self.cleanup(lower); Self.cleanup(upper) }
        let lo = try Self.reader(lower, whiteouts: true), up = try Self.reader(upper, whiteouts: true)
        let lowerTmp = try #require(try lo.lookup("/tmp"))
        #expect(up.isImpliedDirectory(up.rootInode) && !lo.isImpliedDirectory(lowerTmp))
        let merged = try NamespaceFileSystem(overlayOf: [Layer(reader: up, inode: up.rootInode), Layer(reader: lo, inode: lo.rootInode)], name: "layers")
        let tmp = try merged.metadata(of: try #require(try merged.lookup("/tmp")))
        #expect(tmp.permissions == 0o1777 && tmp.mtime == Timestamp(seconds: 1_600_000_000))
        #expect(try merged.lookup("/tmp/x") != nil)
        let new = try merged.metadata(of: try #require(try merged.lookup("/new")))
        #expect(new.permissions == 0o755 && new.mtime == Timestamp(seconds: 0) && new.uid == 0)
    }
}

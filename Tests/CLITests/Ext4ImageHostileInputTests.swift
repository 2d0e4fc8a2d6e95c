import DiskImage
import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// Issue 22 through the binary: hostile options and `--add-tar` members for `--format ext4`. Each
/// run must end with the right status (no signal, no hang), name what it dropped on stderr as
/// `warning: ...` and in the report's diagnostics, and leave no temporary file.
@Suite(.serialized, .enabled(if: FwassembleCLI.path != nil, "fwassemble binary not built"))
struct Ext4ImageHostileInputTests {
    typealias Folder = OutputStageTests.Folder

    static func run(_ args: [String], in f: Folder, seconds: Double = 10) throws -> FwassembleCLI.Result {
        let start = Date()
        let r = try FwassembleCLI.run(args, cwd: f.path)
        #expect(Date().timeIntervalSince(start) < seconds, "\(args) took \(Date().timeIntervalSince(start)) s")
        return r
    }

    static func report(_ f: Folder, _ name: String) throws -> AssembleReport {
        try JSONDecoder().decode(AssembleReport.self, from: Data(contentsOf: URL(fileURLWithPath: f.path + "/\(name).report.json")))
    }

    static func debugfs(_ image: String, _ request: String) throws -> String {
        String(decoding: try TestImages.run(["debugfs", "-R", request, image]), as: UTF8.self)
    }

    /// A tar written by Python's tarfile (PAX) into the folder; `body` calls `entry(...)`.
    static func tar(_ name: String, in f: Folder, _ body: String) throws {
        let script = """
        import io, sys, tarfile
        def entry(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, pax=None, uid=0, mtime=1700000000):
            i = tarfile.TarInfo(name); i.type = kind; i.size = len(data); i.linkname = link; i.mode = mode
            i.uid = uid; i.mtime = mtime
            if pax: i.pax_headers = pax
            t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        with tarfile.open(sys.argv[1], "w:gz", format=tarfile.PAX_FORMAT) as t:
        \(body.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        """
        try TestImages.run(["python3", "-c", script, f.path + "/" + name])
    }

    /// `--padding` past what ext4 without 64bit holds (8 EiB overflowed the multiplication and
    /// trapped; 16 EiB wrapped to 0 and succeeded) and `--inodes` past 32 bits or below 16 are
    /// usage errors, exit 2, before anything is written.
    @Test func numericOptionsOutOfRangeAreUsageErrors() throws {
        let f = try Folder()
        let cases: [(String, String)] = [("--padding", "8796093022208"), ("--padding", "17592186044416"),
                                         ("--padding", "\(AssembleRequest.maximumPaddingMiB + 1)"), ("--padding", "-1"),
                                         ("--inodes", "4294967296"), ("--inodes", "4294967295"), ("--inodes", "15"), ("--inodes", "-5")]
        for (option, value) in cases {
            let r = try Self.run(["assemble", f.image, "-o", "x.ext4", option, value], in: f)
            #expect(r.status == 2, "\(option) \(value): \(r.status) \(r.stderr)")
            #expect(r.stderr.contains(option), "\(r.stderr)")
        }
        #expect(try f.names() == ["sample.img"])
    }

    /// The report's `inodes` is what the image uses (it echoed --inodes); `inodes_total` is the
    /// capacity. Both as dumpe2fs counts them.
    @Test func reportCountsTheInodesUsed() throws {
        let f = try Folder()
        let r = try Self.run(["assemble", f.image, "-q", "-o", "i.ext4", "--padding", "16", "--inodes", "100000"], in: f, seconds: 30)
        #expect(r.status == 0, "\(r.stderr)")
        let ext4 = try #require(try Self.report(f, "i.ext4").ext4)
        let header = String(decoding: try TestImages.run(["dumpe2fs", "-h", f.path + "/i.ext4"]), as: UTF8.self)
        func field(_ name: String) -> UInt32? {
            header.split(separator: "\n").first { $0.hasPrefix(name + ":") }.flatMap { UInt32($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
        }
        let total = try #require(field("Inode count")), free = try #require(field("Free inodes"))
        #expect(ext4.inodesTotal == total)
        #expect(ext4.inodes == total - free && ext4.inodes < 100_000 && ext4.inodes > 11)
        #expect(total >= 100_000 && total < 100_000 + 32_768)
        let json = String(decoding: try Data(contentsOf: URL(fileURLWithPath: f.path + "/i.ext4.report.json")), as: UTF8.self)
        #expect(json.contains("\"inodes\"") && json.contains("\"inodes_total\""))
    }

    /// Members that cannot be placed are not written and are named: on stderr as warnings, in
    /// the report (code add_tar, `skipped_members`). The symlink stays a symlink, and a directory
    /// the tar only implies (/tmp) keeps the image's mode and time.
    @Test func addTarMembersThatCannotBePlacedAreNamed() throws {
        let f = try Folder()
        try Self.tar("traps.tar.gz", in: f, """
        entry("tmp/x", data=b"x")
        entry("../escape")
        entry("ok", pax={"path": "a/../../x"})
        entry("lnk", tarfile.SYMTYPE, link="/etc")
        entry("lnk/below")
        entry("hard", tarfile.LNKTYPE, link="missing")
        entry("bigu", pax={"uid": "4294967301"})
        entry("bigg", pax={"gid": str(2**40)})
        entry("old", pax={"mtime": "-1000000000000"})
        """)
        let plain = try Self.run(["assemble", f.image, "-q", "-o", "plain.ext4", "--padding", "16"], in: f, seconds: 30)
        #expect(plain.status == 0)
        let r = try Self.run(["assemble", f.image, "-o", "t.ext4", "--padding", "16", "--add-tar", "traps.tar.gz"], in: f, seconds: 30)
        #expect(r.status == 0, "\(r.stderr)")
        let warnings = r.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") }
        for text in ["2 entries not written (a '..' component", "1 entry not written (below a symlink", "lnk/below",
                     "1 entry not written (a hardlink to no earlier file", "2 entries not written (a uid or gid beyond 32 bits",
                     "1 entry written with the time clamped"] {
            #expect(warnings.contains { $0.contains(text) }, "\(text) not in \(r.stderr)")
        }
        let report = try Self.report(f, "t.ext4")
        #expect(report.ext4?.skippedMembers == 6)
        #expect(report.diagnostics.filter { $0.code == .addTar }.count >= 5)
        #expect(try Self.debugfs(f.path + "/t.ext4", "stat /lnk").contains("Type: symlink"))
        let root = try Self.debugfs(f.path + "/t.ext4", "ls /")
        #expect(root.contains("lnk") && !root.contains("bigu") && !root.contains("bigg") && root.contains("old"), "\(root)")
        func modeAndTime(_ image: String) throws -> [Substring] {
            try Self.debugfs(f.path + "/" + image, "stat /tmp").split(separator: "\n").filter { $0.contains("Mode:") || $0.contains("mtime:") }
        }
        #expect(try modeAndTime("t.ext4") == (try modeAndTime("plain.ext4")))
        #expect(try f.leftovers().isEmpty)
    }

    /// 65,001 links to one file through --add-tar: one path is written as a copy (ext4 refuses a
    /// link past 65,000, EMLINK), with a warning naming it and the count in the report; the
    /// 16-bit count trapped before. e2fsck finds the image clean.
    @Test(.timeLimit(.minutes(3))) func linksPastExt4sLimitAreCopies() throws {
        let f = try Folder()
        try Self.tar("links.tar.gz", in: f, """
        entry("f", data=b"content")
        for i in range(65001):
            entry("l%d/h%d" % (i // 500, i), tarfile.LNKTYPE, link="f")
        """)
        let r = try Self.run(["assemble", f.image, "-o", "l.ext4", "--padding", "64", "--add-tar", "links.tar.gz"], in: f, seconds: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning: 1 hardlink path(s) written as a copy of their file, which had 65000 links already"), "\(r.stderr)")
        let report = try Self.report(f, "l.ext4")
        #expect(report.ext4?.linkLimitCopies == 1)
        #expect(report.diagnostics.contains { $0.code == .linkLimit })
        _ = try TestImages.run(["e2fsck", "-fn", f.path + "/l.ext4"])
        #expect(try f.leftovers().isEmpty)
    }

    /// 10,000 nested directories and 100,000 entries in one directory through --add-tar: each
    /// run takes seconds (120 s and 185 s before).
    @Test(.timeLimit(.minutes(3))) func deepAndWideTarsAreLinear() throws {
        let f = try Folder()
        try Self.tar("deep.tar.gz", in: f, """
        p = ""
        for i in range(10000):
            p = p + ("/" if p else "") + "d"
            entry(p, tarfile.DIRTYPE, mode=0o755)
        """)
        try Self.tar("wide.tar.gz", in: f, """
        entry("w", tarfile.DIRTYPE, mode=0o755)
        for i in range(100000):
            entry("w/f%d" % i)
        """)
        for tar in ["deep.tar.gz", "wide.tar.gz"] {
            let r = try Self.run(["assemble", f.image, "-q", "-o", "\(tar).ext4", "--padding", "64", "--add-tar", tar], in: f, seconds: 30)
            #expect(r.status == 0, "\(r.stderr)")
            _ = try TestImages.run(["e2fsck", "-fn", f.path + "/\(tar).ext4"])
        }
        #expect(try Self.report(f, "wide.tar.gz.ext4").ext4?.addedMembers == 100_001)
        #expect(try f.leftovers().isEmpty)
    }
}

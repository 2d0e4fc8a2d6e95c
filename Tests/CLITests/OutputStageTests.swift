import DiskImage
import FirmwareAssembler
import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The one output stage, through the binary as users meet it: nothing a user owns is replaced
/// (inputs, devices, FIFOs, symlinks), interrupted runs leave nothing, one naming rule, and the
/// options every output path now honours (--rehost and --add-tar for ext4, --strict).
@Suite(.serialized) struct OutputStageTests {
    static let disk = "sample.img"

    /// A scratch folder with a private copy of `disk` (so a failure cannot damage the shared one).
    final class Folder {
        let path: String
        let image: String
        init(copying disk: String = OutputStageTests.disk) throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-out-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            image = path + "/" + disk
            try FileManager.default.copyItem(atPath: try TestImages.path(disk), toPath: image)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }

        func names() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }
        /// Temporary files of an output (`.NAME.fwassemble-tmp.PID.N`).
        func leftovers() throws -> [String] { try names().filter { $0.contains(".fwassemble-tmp.") } }
    }

    /// sha256sum's digest (the debug build's own SHA-256 is slow on 100 MB images).
    static func sha(_ path: String) throws -> String {
        String(String(decoding: try TestImages.run(["sha256sum", path]), as: UTF8.self).prefix(64))
    }

    static func run(_ args: [String], in folder: Folder) throws -> FwassembleCLI.Result {
        try FwassembleCLI.run(args, cwd: folder.path)
    }

    // MARK: inputs are never outputs

    @Test(arguments: [
        ["assemble", "IMG", "-q", "-o", "OUT"],
        ["assemble", "IMG", "-q", "--format", "ext4", "-o", "OUT"],
        ["assemble", "IMG", "-q", "--format", "qcow2", "-o", "OUT"],
        ["assemble", "IMG", "-q", "-o", "x.tar", "--report", "OUT"],
        ["extract", "IMG", "-q", "-p", "1", "-o", "OUT"],
        ["docker", "IMG", "--export", "any", "-o", "OUT"],
    ])
    func theInputIsNeverTheOutput(_ template: [String]) throws {
        let f = try Folder()
        let before = try Self.sha(f.image)
        try TestImages.run(["ln", "-s", f.image, f.path + "/link.img"])
        try TestImages.run(["ln", f.image, f.path + "/hard.img"])
        for out in [f.image, "sample.img", f.path + "/link.img", f.path + "/hard.img"] {
            let args = template.map { $0 == "IMG" ? f.image : $0 == "OUT" ? out : $0 }
            let r = try Self.run(args, in: f)
            #expect(r.status == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.contains("refusing to overwrite"), "\(args): \(r.stderr)")
            #expect(try Self.sha(f.image) == before)
        }
        #expect(try f.names() == ["hard.img", "link.img", "sample.img"])
    }

    /// A qcow2 overlay reads its backing file: neither may be the output.
    @Test func aBackingFileIsAnInputToo() throws {
        let f = try Folder()
        let before = try Self.sha(f.image)
        try TestImages.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", f.image, "-F", "raw", f.path + "/over.qcow2"])
        let r = try Self.run(["assemble", f.path + "/over.qcow2", "-q", "-o", f.image], in: f)
        #expect(r.status == 1 && r.stderr.contains("refusing to overwrite"), "\(r.stderr)")
        #expect(try Self.sha(f.image) == before)
        var request = ExportRequest.of("x", image: false, to: f.image)
        request.output.compression = CompressionFormat.none
        #expect(throws: FWError.self) { try Disk(path: f.path + "/over.qcow2").export(request) }
        #expect(try Self.sha(f.image) == before)
    }

    // MARK: devices, FIFOs, symlinks

    @Test func devicesAndFIFOsAreWrittenInPlace() throws {
        let f = try Folder()
        let fifo = f.path + "/fifo", fifo2 = f.path + "/fifo2", null = f.path + "/null"
        try TestImages.run(["mkfifo", fifo, fifo2])
        // Readers, so opening the FIFOs for writing does not block.
        let readers = try [fifo, fifo2].map { path -> Process in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "cat \"$0\" > /dev/null", path]
            try p.run()
            return p
        }
        let r = try Self.run(["assemble", f.image, "-q", "-o", fifo, "--report", fifo2], in: f)
        #expect(r.status == 0, "\(r.stderr)")
        for p in readers { p.waitUntilExit() }
        if getuid() == 0 {
            try TestImages.run(["mknod", "-m", "666", null, "c", "1", "3"])
            let r = try Self.run(["assemble", f.image, "-q", "-o", "x.tar", "--report", null], in: f)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try FileManager.default.attributesOfItem(atPath: null)[.type] as? FileAttributeType == .typeCharacterSpecial)
            // An ext4 image is a file: a device output is refused, and stays a device.
            let e = try Self.run(["assemble", f.image, "-q", "--format", "ext4", "-o", null], in: f)
            #expect(e.status == 1 && e.stderr.contains("not a regular file"), "\(e.stderr)")
            #expect(try FileManager.default.attributesOfItem(atPath: null)[.type] as? FileAttributeType == .typeCharacterSpecial)
        }
        for p in [fifo, fifo2] {
            #expect(try FileManager.default.attributesOfItem(atPath: p)[.type] as? FileAttributeType == .typeUnknown
                    || (try FileManager.default.attributesOfItem(atPath: p)[.type] as? FileAttributeType) != .typeRegular)
        }
        #expect(try f.leftovers().isEmpty)
    }

    /// `-o /dev/stdout` is standard output (a pipe here), written through the descriptor: no
    /// temporary file in /dev, no report beside it.
    @Test func devStdoutIsStandardOutput() throws {
        let f = try Folder()
        try? FileManager.default.removeItem(atPath: "/dev/stdout.report.json")  // a leftover of an older build
        let r = try Self.run(["assemble", f.image, "-q", "-o", "/dev/stdout"], in: f)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.prefix(2) == Data([0x1F, 0x8B]))
        #expect(!FileManager.default.fileExists(atPath: "/dev/stdout.report.json"))
        #expect(try f.names() == ["sample.img"])
    }

    @Test func aSymlinkedOutputWritesItsTargetAndStaysALink() throws {
        let f = try Folder()
        try FileManager.default.createDirectory(atPath: f.path + "/real", withIntermediateDirectories: true)
        try TestImages.run(["ln", "-s", "real/target.tar.gz", f.path + "/link.tar.gz"])
        let r = try Self.run(["assemble", f.image, "-q", "-o", "link.tar.gz"], in: f)
        #expect(r.status == 0, "\(r.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: f.path + "/link.tar.gz")
        #expect(attributes[.type] as? FileAttributeType == .typeSymbolicLink)
        try TestImages.run(["gzip", "-t", f.path + "/real/target.tar.gz"])
        // Again, over the existing target: still a link, the target replaced whole.
        let again = try Self.run(["assemble", f.image, "-q", "-o", "link.tar.gz", "--compression", "gzip", "--level", "1"], in: f)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try FileManager.default.attributesOfItem(atPath: f.path + "/link.tar.gz")[.type] as? FileAttributeType == .typeSymbolicLink)
        try TestImages.run(["gzip", "-t", f.path + "/real/target.tar.gz"])
    }

    // MARK: interrupted runs leave nothing

    /// SIGINT and SIGTERM at random moments: the run ends by the signal, and neither a temporary
    /// file nor a partial output is left; a finished run left a complete output.
    @Test(arguments: [
        ["assemble", "IMG", "-q", "-o", "out.tar.gz", "--threads", "1", "--level", "12"],
        ["assemble", "IMG", "-q", "-o", "out.ext4", "--rehost"],
        ["assemble", "IMG", "-q", "-o", "out.qcow2", "--padding", "64"],
        ["extract", "IMG", "-q", "-p", "hassos-data", "-o", "out.tar.gz", "--threads", "1", "--level", "12"],
        ["docker", "IMG", "--export-image", "IMAGE", "-o", "out.tar.gz", "--threads", "1", "--level", "12"],
    ])
    func signalsLeaveNothing(_ template: [String]) throws {
        let f = try Folder(copying: "haos-full.img")
        // The image of an export: the disk's first one.
        let image = try #require(try Disk(path: f.image).docker().dataRoots.first?.images.first?.id)
        let args = template.map { $0 == "IMG" ? f.image : $0 == "IMAGE" ? image : $0 }
        for (i, signal) in [SIGINT, SIGTERM, SIGINT, SIGTERM].enumerated() {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try #require(FwassembleCLI.path))
            p.arguments = args
            p.currentDirectoryURL = URL(fileURLWithPath: f.path)
            p.standardError = FileHandle.nullDevice
            try p.run()
            usleep(UInt32.random(in: 20_000...(i < 2 ? 400_000 : 1_500_000)))
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            #expect(try f.leftovers().isEmpty, "\(args) after signal \(signal)")
            let output = args[try #require(args.firstIndex(of: "-o")) + 1]
            if p.terminationReason == .uncaughtSignal {
                #expect(p.terminationStatus == signal)
                #expect(!(try f.names()).contains(output), "a partial \(output) was left")
            } else {
                #expect(p.terminationStatus == 0, "ended with \(p.terminationStatus) instead of the signal")
                #expect(try f.names().contains(output))
                try FileManager.default.removeItem(atPath: f.path + "/" + output)
            }
            try? FileManager.default.removeItem(atPath: f.path + "/" + output + ".report.json")
        }
    }

    /// SIGKILL cannot be caught: the next run to the same destination removes what it left.
    @Test func theNextRunRemovesWhatSIGKILLLeft() throws {
        let f = try Folder(copying: "haos-full.img")
        // A leftover of a process that no longer exists, named as the output stage names them.
        let dead = f.path + "/.out.ext4.fwassemble-tmp.999999.0"
        try Data(count: 4096).write(to: URL(fileURLWithPath: dead))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(FwassembleCLI.path))
        p.arguments = ["assemble", f.image, "-q", "-o", "out.ext4"]
        p.currentDirectoryURL = URL(fileURLWithPath: f.path)
        try p.run()
        usleep(300_000)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let r = try Self.run(["assemble", f.image, "-q", "-o", "out.ext4"], in: f)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.leftovers().isEmpty)
        #expect(try f.names().contains("out.ext4"))
    }

    /// A signal to `batch` goes on to the running child, which removes its output; the batch
    /// waits for it and starts no further disk.
    @Test func batchForwardsSignalsToItsChildren() throws {
        let f = try Folder(copying: "haos-full.img")
        let out = f.path + "/out"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(FwassembleCLI.path))
        p.arguments = ["batch", f.image, try TestImages.path("haos-gpt.img"), "-o", out, "--jobs", "1", "-q",
                       "--threads", "1", "--level", "12"]
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Once the first disk's child runs (it reads its request on standard input).
        for _ in 0..<600 {
            let ps = String(decoding: try TestImages.run(["ps", "-eo", "args"]), as: UTF8.self)
            if ps.contains("assemble --request -") || !p.isRunning { break }
            usleep(50_000)
        }
        try #require(p.isRunning, "the batch ended before its first child started")
        usleep(200_000)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGTERM)
        // The first disk was stopped (no archive), the second never started.
        #expect(!FileManager.default.fileExists(atPath: out + "/haos-gpt.rootfs.tar.gz"))
        #expect(!FileManager.default.fileExists(atPath: out + "/haos-full.rootfs.tar.gz"))
        // No child is left running on our folder.
        let ps = String(decoding: try TestImages.run(["ps", "-eo", "args"]), as: UTF8.self)
        #expect(!ps.contains(out), "a child of the batch still runs")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        #expect(!names.contains { $0.contains(".fwassemble-tmp.") }, "\(names)")
    }

    // MARK: names, formats, contradictions

    @Test(arguments: [
        ("openwrt-23.05.3-x86-64-generic-ext4-combined.img", "openwrt-23.05.3-x86-64-generic-ext4-combined"),
        ("haos_ova-14.1.qcow2", "haos_ova-14.1"),
        ("haos_ova-14.2.qcow2.xz", "haos_ova-14.2"),
        ("/x/y/disk.IMG.gz", "disk"),
        ("router.bin", "router"),
        ("firmware.v2.vmdk", "firmware.v2"),
        ("image", "image"),
        (".img", ".img"),
        ("a.tar", "a.tar"),
    ])
    func stems(_ image: String, _ stem: String) {
        #expect(OutputNaming.stem(of: image) == stem)
    }

    @Test func defaultNamesFollowFormatAndCompression() throws {
        func name(_ output: OutputRequest) throws -> String {
            OutputNaming.defaultName(for: "haos_ova-14.1.img", try output.resolve())
        }
        #expect(try name(OutputRequest()) == "haos_ova-14.1.rootfs.tar.gz")
        #expect(try name(OutputRequest(compression: .zstd)) == "haos_ova-14.1.rootfs.tar.zst")
        #expect(try name(OutputRequest(compression: CompressionFormat.none)) == "haos_ova-14.1.rootfs.tar")
        #expect(try name(OutputRequest(format: .ext4)) == "haos_ova-14.1.ext4")
        #expect(try name(OutputRequest(format: .qcow2)) == "haos_ova-14.1.qcow2")
        // Batch: versions kept, so these two no longer collide.
        #expect(Batch.outputNames(for: ["/a/haos_ova-14.1.qcow2", "/a/haos_ova-14.2.qcow2"], suffix: ".rootfs.tar.gz")
                == ["haos_ova-14.1.rootfs.tar.gz", "haos_ova-14.2.rootfs.tar.gz"])
    }

    /// The output's suffix chooses the compression when no option does; a contradiction is a
    /// usage error (exit 2) and writes nothing.
    @Test func theSuffixChoosesAndContradictionsAreUsageErrors() throws {
        let f = try Folder()
        let zst = try Self.run(["assemble", f.image, "-q", "-o", "x.tar.zst"], in: f)
        #expect(zst.status == 0, "\(zst.stderr)")
        #expect(try FileHandle(forReadingFrom: URL(fileURLWithPath: f.path + "/x.tar.zst")).readData(ofLength: 4) == Data([0x28, 0xB5, 0x2F, 0xFD]))
        let plain = try Self.run(["extract", f.image, "-q", "-p", "1", "-o", "p.tar"], in: f)
        #expect(plain.status == 0)
        #expect(try FileHandle(forReadingFrom: URL(fileURLWithPath: f.path + "/p.tar")).readData(ofLength: 2) != Data([0x1F, 0x8B]))
        let defaultZstd = try Self.run(["assemble", f.image, "-q", "--compression", "zstd"], in: f)
        #expect(defaultZstd.status == 0)
        #expect(try f.names().contains("sample.rootfs.tar.zst"))
        let before = try f.names()
        for args in [["assemble", f.image, "-o", "x.tar.zst", "--compression", "gzip"],
                     ["assemble", f.image, "-o", "x.tar", "--format", "ext4"],
                     ["assemble", f.image, "-o", "x.ext4", "--compression", "gzip"],
                     ["extract", f.image, "-p", "1", "-o", "e.tar.xz"],
                     ["assemble", f.image, "-o", "x.ext4", "--padding", "17592186044416"],
                     ["assemble", f.image, "-o", "x.ext4", "--padding", "8796093022208"],
                     ["assemble", f.image, "-o", "x.tar", "--threads", "0"],
                     ["assemble", f.image, "-o", "x.tar.gz", "--level", "13"],
                     ["assemble", f.image, "-o", "x.tar", "--add-tar", "y.tar"]] {
            let r = try Self.run(args, in: f)
            #expect(r.status == 2, "\(args): \(r.status) \(r.stderr)")
        }
        #expect(try f.names() == before)
    }

    // MARK: options every output honours

    @Test func strictFailsWithOneLineAndLeavesNothing() throws {
        let f = try Folder()
        try TestImages.run(["truncate", "-s", "90M", f.image])
        let r = try Self.run(["assemble", f.image, "-o", "t.tar", "--strict"], in: f)
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("fwassemble: ") && lines[0].contains("--strict"), "\(r.stderr)")
        #expect(try f.names() == ["sample.img"])
        // Without --strict: the partition table's warnings reach the report.
        let ok = try Self.run(["assemble", f.image, "-q", "-o", "t.tar"], in: f)
        #expect(ok.status == 0)
        let report = try JSONDecoder().decode(AssembleReport.self, from: Data(contentsOf: URL(fileURLWithPath: f.path + "/t.tar.report.json")))
        #expect(report.warnings.contains { $0.hasPrefix("partition table: ") && $0.contains("truncated") }, "\(report.warnings)")
        // The same warnings as values with a code and a place, in the same order.
        #expect(report.diagnostics.filter { $0.code != .readError }.map(\.text) == report.warnings)
        #expect(report.diagnostics.first?.code == .partitionTable && report.diagnostics.first?.place == "partition table")
        #expect(report.diagnostics.contains { $0.code == .plan })
    }

    /// `--rehost` applies to the ext4 image as to the archive: the same /etc/fstab, the same
    /// `rehost` key in the report.
    @Test func rehostAppliesToExt4() throws {
        let f = try Folder(copying: "rpi-full.img")
        let tar = try Self.run(["assemble", f.image, "-q", "--rehost", "-o", "r.tar"], in: f)
        #expect(tar.status == 0, "\(tar.stderr)")
        let ext4 = try Self.run(["assemble", f.image, "-q", "--rehost", "-o", "r.ext4", "--padding", "16"], in: f)
        #expect(ext4.status == 0, "\(ext4.stderr)")
        let fromTar = try TestImages.run(["tar", "-xOf", f.path + "/r.tar", "./etc/fstab"])
        let fromExt4 = try TestImages.run(["debugfs", "-R", "cat /etc/fstab", f.path + "/r.ext4"])
        #expect(fromTar == fromExt4)
        #expect(String(decoding: fromTar, as: UTF8.self).contains("# fwassemble --rehost"))
        func report(_ name: String) throws -> AssembleReport {
            try JSONDecoder().decode(AssembleReport.self, from: Data(contentsOf: URL(fileURLWithPath: f.path + "/\(name).report.json")))
        }
        #expect(try report("r.ext4").rehost == (try report("r.tar").rehost))
        #expect(try report("r.ext4").rehost?.isEmpty == false)
    }

    /// `--add-tar` reads gzip and zstd tars (penguin's igloo files come as .tar.gz), and refuses
    /// what is no tar.
    @Test func addTarReadsCompressedTars() throws {
        let f = try Folder()
        try FileManager.default.createDirectory(atPath: f.path + "/igloo/igloo", withIntermediateDirectories: true)
        try "hello\n".write(toFile: f.path + "/igloo/igloo/hello", atomically: true, encoding: .utf8)
        try TestImages.run(["tar", "-czf", f.path + "/igloo.tar.gz", "-C", f.path + "/igloo", "igloo"])
        try TestImages.run(["tar", "--zstd", "-cf", f.path + "/igloo.tar.zst", "-C", f.path + "/igloo", "igloo"])
        for tar in ["igloo.tar.gz", "igloo.tar.zst"] {
            let r = try Self.run(["assemble", f.image, "-q", "-o", "a.ext4", "--padding", "16", "--add-tar", tar], in: f)
            #expect(r.status == 0, "\(r.stderr)")
            let report = try JSONDecoder().decode(AssembleReport.self, from: Data(contentsOf: URL(fileURLWithPath: f.path + "/a.ext4.report.json")))
            #expect(report.ext4?.addedMembers == 2)
            #expect(try TestImages.run(["debugfs", "-R", "cat /igloo/hello", f.path + "/a.ext4"]) == Data("hello\n".utf8))
        }
        try Data("tiny".utf8).write(to: URL(fileURLWithPath: f.path + "/tiny.tar"))
        let tiny = try Self.run(["assemble", f.image, "-q", "-o", "b.ext4", "--add-tar", "tiny.tar"], in: f)
        #expect(tiny.status == 1 && tiny.stderr.contains("is not a tar"), "\(tiny.stderr)")
        #expect(!(try f.names()).contains("b.ext4"))
        #expect(try f.leftovers().isEmpty)
    }

    /// A whole request on standard input runs the same job as the options.
    @Test func aRequestOnStandardInput() throws {
        let f = try Folder()
        var request = AssembleRequest()
        request.source.disk = f.image
        request.output = OutputRequest(compression: .gzip, level: 1, threads: 1, output: f.path + "/req.tar.gz")
        request.noDevices = true
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(FwassembleCLI.path))
        p.arguments = ["assemble", "--request", "-", "-q"]
        let input = Pipe()
        p.standardInput = input
        try p.run()
        input.fileHandleForWriting.write(Data(try request.json().utf8))
        try input.fileHandleForWriting.close()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let viaOptions = try Self.run(["assemble", f.image, "-q", "--level", "1", "--threads", "1", "--no-devices", "-o", "opt.tar.gz"], in: f)
        #expect(viaOptions.status == 0)
        #expect(try Self.sha(f.path + "/req.tar.gz") == (try Self.sha(f.path + "/opt.tar.gz")))
        let mixed = try Self.run(["assemble", f.image, "--request", "x.json", "--rehost"], in: f)
        #expect(mixed.status == 2)
    }
}

import FirmwareAssembler
import Foundation
import TestSupport
import Testing

@Suite(.enabled(if: FwassembleCLI.path != nil, "fwassemble binary not built"))
struct BinaryTests {

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    static func run(_ arguments: [String]) throws -> Result {
        let r = try FwassembleCLI.run(arguments)
        return Result(status: r.status, stdout: r.stdoutText, stderr: r.stderr)
    }

    @Test(arguments: ["haos-gpt.img", "haos-mbr.img", "gpt-4k.img", "bare-fs.img"])
    func inspectJSONMatchesToolsAndFacade(_ name: String) throws {
        let path = try TestImages.path(name)
        let r = try Self.run(["inspect", "--json", path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty)
        try InspectTests.checkAgainstTools(try InspectTests.document(r.stdout), image: path)
        let viaBinary = try JSONDecoder().decode(DiskInspection.self, from: Data(r.stdout.utf8))
        #expect(viaBinary == (try Disk(path: path).inspect()))
    }

    @Test func inspectTablePrintsEveryPartition() throws {
        let path = try TestImages.path("haos-mbr.img")
        let r = try Self.run(["inspect", path])
        #expect(r.status == 0)
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 2 + 9)   // header, column titles, nine partitions
        #expect(r.stdout.contains("hassos-overlay") && r.stdout.contains("48617373"))
    }

    @Test func errorsAreOneLineExitOne() throws {
        let dir = FileManager.default.temporaryDirectory.path
        let empty = try InspectTests.temporaryFile([])
        defer { try? FileManager.default.removeItem(atPath: empty) }
        for (path, fragment) in [(dir, "directory"), (empty, "empty"), ("/nonexistent/disk.img", "No such file")] {
            let r = try Self.run(["inspect", path])
            #expect(r.status == 1, "\(path)")
            #expect(r.stdout.isEmpty)
            #expect(r.stderr.hasPrefix("fwassemble: \(path): "), "\(r.stderr)")
            #expect(r.stderr.contains(fragment), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
    }

    @Test(arguments: [["inspect"], ["inspect", "--bogus", "x.img"], ["no-such-command"], ["inspect", "a", "b"]])
    func usageErrorsExitTwo(_ arguments: [String]) throws {
        let r = try Self.run(arguments)
        #expect(r.status == 2, "\(arguments): \(r.stderr)")
        #expect(!r.stderr.isEmpty)
    }

    @Test func versionAndHelp() throws {
        let v = try Self.run(["--version"])
        #expect(v.status == 0)
        #expect(v.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
        let h = try Self.run(["--help"])
        #expect(h.status == 0)
        #expect(h.stdout.contains("inspect"))
    }
}

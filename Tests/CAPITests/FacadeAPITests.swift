import CFwassemble
import DiskImage
import FirmwareAssembler
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The façade additions the library users rely on (destinations, the namespace walk), the Swift
/// example of docs/library.md, and the C ABI called in-process.
@Suite struct FacadeAPITests {
    static let disk = "haos-gpt.img"

    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("capi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func destinationsWriteTheSameBytes() throws {
        let image = try TestImages.path(Self.disk)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = try Disk(path: image)
        var options = AssembleRequest()
        options.output = OutputRequest(compression: .gzip, level: 6, threads: 2)

        let viaPath = dir.appendingPathComponent("path.tar.gz").path
        let pathReport = try disk.assemble(to: .path(viaPath), options)
        let expected = try Data(contentsOf: URL(fileURLWithPath: viaPath))
        #expect(FileManager.default.fileExists(atPath: viaPath + ".report.json"))
        #expect(pathReport.output == viaPath)

        let fdPath = dir.appendingPathComponent("fd.tar.gz").path
        let fd = open(fdPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try #require(fd >= 0)
        let fdReport = try disk.assemble(to: .fileDescriptor(fd), options)
        close(fd)
        #expect(try Data(contentsOf: URL(fileURLWithPath: fdPath)) == expected)
        #expect(fdReport.output == "fd \(fd)")
        #expect(!FileManager.default.fileExists(atPath: fdPath + ".report.json"))

        let collected = Collector()
        let chunkReport = try disk.assemble(to: .chunks { collected.append($0) }, options)
        #expect(collected.data == expected)
        #expect(collected.largestChunk <= 1 << 20 && collected.chunks > 0)
        #expect(chunkReport.output == "callback")
        #expect(chunkReport.members == pathReport.members && chunkReport.tarBytes == pathReport.tarBytes)

        // The CLI's archive too (an independent path through ArgumentParser).
        let cli = try Self.cli()
        let viaCLI = dir.appendingPathComponent("cli.tar.gz").path
        try TestImages.run([cli, "assemble", "--quiet", "--threads", "2", image, "-o", viaCLI])
        #expect(try Data(contentsOf: URL(fileURLWithPath: viaCLI)) == expected)
    }

    @Test func exportContainerEqualsTheCLI() throws {
        let image = try TestImages.path("haos-full.img")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = try Disk(path: image)
        let name = try #require(try disk.docker().dataRoots.first?.containers.first?.name)
        let viaAPI = dir.appendingPathComponent("api.tar.gz").path
        var request = ExportRequest()
        request.export = name
        request.output.output = viaAPI
        let result = try disk.export(request)
        let viaCLI = dir.appendingPathComponent("cli.tar.gz").path
        try TestImages.run([try Self.cli(), "docker", image, "--export", name, "-o", viaCLI])
        #expect(try Data(contentsOf: URL(fileURLWithPath: viaAPI)) == (try Data(contentsOf: URL(fileURLWithPath: viaCLI))))
        #expect(result.members > 0 && result.what.contains(name))
        request.export = "no-such-container"
        request.output.output = dir.appendingPathComponent("x").path
        #expect(throws: FWError.self) { try disk.export(request) }
    }

    @Test func throwingChunkCallbackStopsTheAssembly() throws {
        let disk = try Disk(path: try TestImages.path(Self.disk))
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try disk.assemble(to: .chunks { _ in throw Stop() })
        }
    }

    /// haos-full has binds, an overlay partition, Docker layers with whiteouts and hardlinks
    /// across binds: every entry of the walk is the archive's member, in the same order.
    @Test(arguments: ["haos-gpt.img", "haos-full.img"])
    func namespaceWalkMatchesTheArchive(disk name: String) throws {
        let image = try TestImages.path(name)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = try Disk(path: image)
        let archive = dir.appendingPathComponent("a.tar.gz").path
        var request = AssembleRequest()
        request.output.threads = 2
        _ = try disk.assemble(to: .path(archive), request)
        let lines = try TestImages.run(["python3", TestImages.repositoryRoot.appendingPathComponent("images/tar_manifest.py").path, archive])
        let members = try String(decoding: lines, as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8))
        }
        let namespace = try disk.namespace(try disk.plan())
        let entries = namespace.filter { $0.metadata.type != .socket }
        #expect(entries.map { $0.path == "/" ? "." : String($0.path.dropFirst()) } == members.map(\.path))
        for (entry, member) in zip(entries, members) {
            #expect(Int(entry.metadata.permissions) == member.perm, "\(entry.path)")
            #expect(entry.metadata.uid == member.uid && entry.metadata.gid == member.gid, "\(entry.path)")
            #expect(entry.metadata.mtime.seconds == member.mtime, "\(entry.path)")
            if let target = entry.hardlinkTarget {
                #expect(member.link == String(target.dropFirst()), "\(entry.path)")
            } else {
                #expect(entry.metadata.type.rawValue == member.type, "\(entry.path)")
                if entry.metadata.type == .regular { #expect(entry.metadata.size == member.size, "\(entry.path)") }
                if let target = entry.metadata.symlinkTarget { #expect(String(decoding: target, as: UTF8.self) == member.target) }
            }
        }
        // Contents stream out of the walk as they do into the archive (CRC-32 from tar_manifest.py).
        var checked = 0
        for (entry, member) in zip(entries, members) where entry.hasContents && entry.hardlinkTarget == nil && entry.metadata.size > 0 {
            let file = try entry.openContents()
            var crc: UInt32 = 0
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
                if n == 0 { break }
                crc = CRC32.checksum(buffer[0..<n], seed: crc)
            }
            #expect(crc == member.crc32, "\(entry.path)")
            checked += 1
        }
        #expect(checked > 0)
        #expect(throws: FWError.self) { try entries[0].openContents() }
    }

    @Test func swiftExampleIsTheDocsBlockAndRuns() throws {
        let root = TestImages.repositoryRoot
        let docs = try String(contentsOf: root.appendingPathComponent("docs/library.md"), encoding: .utf8)
        let example = try String(contentsOf: root.appendingPathComponent("Tests/CAPITests/LibraryExample.swift"), encoding: .utf8)
        #expect(docs.contains("```swift\n" + example + "```\n"), "docs/library.md's Swift block must be Tests/CAPITests/LibraryExample.swift verbatim")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("example.tar.gz").path
        let report = try libraryExample(image: try TestImages.path(Self.disk), output: output)
        #expect(report.members > 0 && FileManager.default.fileExists(atPath: output))
        try TestImages.run(["gzip", "-t", output])
    }

    @Test func cABIInProcess() throws {
        var handle: OpaquePointer?
        var err: OpaquePointer?
        #expect(fwa_open("/nonexistent/disk.img", &handle, &err) == 2)
        #expect(handle == nil)
        let message = fwa_error_message(err).map { String(cString: $0) }
        var expected = ""
        do { _ = try Disk(path: "/nonexistent/disk.img") } catch let e as FWError { expected = e.description }
        #expect(message == expected && !expected.isEmpty)
        #expect(String(cString: fwa_error_code_name(fwa_error_code(err))) == "not_found")
        fwa_error_free(err)

        #expect(fwa_open(try TestImages.path(Self.disk), &handle, &err) == 0 && err == nil)
        defer { fwa_close(handle) }
        var json: UnsafeMutablePointer<CChar>?
        #expect(fwa_inspect_json(handle, &json, &err) == 0)
        let text = json.map { String(cString: $0) }
        fwa_string_free(json)
        #expect(text == (try Disk(path: try TestImages.path(Self.disk)).inspect().json()))
        #expect(fwa_plan_json(handle, "{\"root\": true}", &json, &err) == 6 && json == nil)
        #expect(fwa_error_message(err).map { String(cString: $0) }?.contains("option root: expected") == true)
        fwa_error_free(err)
        #expect(fwa_inspect_json(nil, &json, &err) == 6)
        fwa_error_free(err)
        #expect(String(cString: fwa_error_code_name(99)) == "unknown")
    }

    /// The fwassemble binary built beside the tests.
    static func cli() throws -> String {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fwassemble").path,
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("fwassemble").path,
            Bundle.main.bundleURL.appendingPathComponent("fwassemble").path,
        ]
        if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
        throw BinaryNotFound(near: Bundle.main.bundleURL.path)
    }
}

struct BinaryNotFound: Error, CustomStringConvertible {
    var near: String
    var description: String { "the fwassemble binary was not found near \(near): build it (swift build)" }
}

/// Collects chunks handed to a `.chunks` destination (called on the assembling thread).
final class Collector: @unchecked Sendable {
    private(set) var data = Data()
    private(set) var chunks = 0
    private(set) var largestChunk = 0

    func append(_ buffer: UnsafeRawBufferPointer) {
        data.append(contentsOf: buffer)
        chunks += 1
        largestChunk = max(largestChunk, buffer.count)
    }
}

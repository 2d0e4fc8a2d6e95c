import Assembly
import DiskImage
@testable import DockerState
import FileSystems
import Foundation
import Testing
import TestSupport

/// The ARM variant of a device, from ELF files GNU as and ld (binutils-arm-linux-gnueabihf) write
/// for each -march, checked against what `readelf -A` prints; and the manifest an image index
/// gives such a device, in containerd's order of preference.
@Suite("Device architecture: ARM variants from ELF build attributes, containerd's platform preference")
struct DeviceArchitectureTests {
    static let assembler = "/usr/bin/arm-linux-gnueabihf-as"
    static var haveBinutils: Bool { FileManager.default.isExecutableFile(atPath: assembler) }

    /// An ARM executable built for `march`, its bytes, and readelf's Tag_CPU_arch line.
    static func binary(march: String) throws -> (bytes: [UInt8], readelf: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-arm-\(getpid())-\(march)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }   // cleanup only
        let source = dir.appendingPathComponent("a.s").path, object = dir.appendingPathComponent("a.o").path
        let program = dir.appendingPathComponent("a").path
        try ".global _start\n_start:\n  mov r0, #0\n  bx lr\n".write(toFile: source, atomically: true, encoding: .utf8)
        _ = try TestImages.run([assembler, "-march=\(march)", source, "-o", object])
        _ = try TestImages.run(["/usr/bin/arm-linux-gnueabihf-ld", object, "-o", program])
        let attributes = String(decoding: try TestImages.run(["/usr/bin/arm-linux-gnueabihf-readelf", "-A", program]), as: UTF8.self)
        let line = attributes.split(separator: "\n").first { $0.contains("Tag_CPU_arch:") }.map { String($0) } ?? ""
        return (Array(try Data(contentsOf: URL(fileURLWithPath: program))), line)
    }

    static func detect(_ bytes: [UInt8]) throws -> DeviceArchitecture? {
        let fs = MemoryFileSystem()
        fs.addDirectory("bin")
        fs.addFile("bin/sh", bytes, permissions: 0o755)
        let ns = NamespaceFileSystem(name: "test")
        try ns.mount(fs, at: .root, origin: "/")
        return DeviceArchitecture.detect(in: ns)
    }

    @Test("-march gives the variant readelf names", .enabled(if: haveBinutils, "binutils-arm-linux-gnueabihf is not installed (make deps)"),
          arguments: [("armv5te", "v5TE", "v5"), ("armv6", "v6", "v6"), ("armv7-a", "v7", "v7"), ("armv8-a", "v8", "v8")])
    func variant(march: String, readelfName: String, variant: String) throws {
        let (bytes, readelf) = try Self.binary(march: march)
        #expect(readelf.hasSuffix("Tag_CPU_arch: \(readelfName)"), "\(readelf)")
        let arch = try #require(try Self.detect(bytes))
        #expect(arch.name == "arm" && arch.variant == variant && arch.source == "/bin/sh")
        // Cut anywhere, the file gives an architecture without a variant or none: never a crash.
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            let partial = try Self.detect(Array(bytes.prefix(cut)))
            #expect(partial == nil || partial?.variant == nil || cut >= bytes.count - 64)
        }
    }

    @Test("an index's manifest in containerd's order: own platform, then the lower ARM variants, arm64 then arm")
    func preference() {
        let v6 = DeviceArchitecture(name: "arm", variant: "v6", source: "/bin/sh")
        #expect(v6.preference(architecture: "arm", variant: "v6", os: "linux") == 0)
        #expect(v6.preference(architecture: "arm", variant: "v5", os: nil) == 1)
        #expect(v6.preference(architecture: "arm", variant: "v7", os: "linux") == nil)
        #expect(v6.preference(architecture: "arm", variant: nil, os: "linux") == nil, "arm without a variant is v7")
        let unknown = DeviceArchitecture(name: "arm", source: "/bin/sh")   // no attributes: containerd assumes v7
        #expect(unknown.preference(architecture: "arm", variant: "v7", os: "linux") == 0)
        #expect(unknown.preference(architecture: "arm", variant: nil, os: "linux") == 0)
        #expect(unknown.preference(architecture: "arm", variant: "v6", os: "linux") == 1)
        let arm64 = DeviceArchitecture(name: "arm64", source: "/bin/sh")
        #expect(arm64.preference(architecture: "arm64", variant: "v8", os: "linux") == 0)
        #expect(arm64.preference(architecture: "arm64", variant: nil, os: "linux") == 0)
        #expect(arm64.preference(architecture: "arm", variant: "v7", os: "linux") == 2)
        #expect(arm64.preference(architecture: "amd64", variant: nil, os: "linux") == nil)
        #expect(arm64.preference(architecture: "arm64", variant: nil, os: "windows") == nil)
        let amd64 = DeviceArchitecture(name: "amd64", source: "/bin/sh")
        #expect(amd64.preference(architecture: "386", variant: nil, os: "linux") == 1)
    }

    @Test("ULEB128 and NUL-terminated strings are bounded by their record")
    func cursor() throws {
        var c = ByteCursor([0xE5, 0x8E, 0x26, 0x41, 0x00, 0x42], context: "test")
        #expect(try c.readULEB128() == 624_485)
        #expect(try c.readCString() == [0x41])
        #expect(throws: FWError.self) { try c.readCString() }
        var long = ByteCursor(Array(repeating: 0xFF, count: 11) + [0x01], context: "test")
        #expect(throws: FWError.self) { try long.readULEB128() }
        var cut = ByteCursor([0x80], context: "test")
        #expect(throws: FWError.self) { try cut.readULEB128() }
    }
}

import Foundation
import Testing
import DiskImage
import DiskFormats
import TestSupport

/// Every container format and wrapper of images/disks/formats.sh (converted by qemu-img,
/// compressed by xz/gzip/zstd/zip/tar) must read byte-identical to the raw disk it came from.
@Suite("Disk image formats")
struct DiskFormatsTests {
    static let raw = "formats-raw.img"

    /// Compares `source` with the raw reference in 4 MiB chunks; `patch` changes the expected
    /// bytes (for images whose content was modified on purpose).
    func expectSameContent(_ source: any ByteSource, patch: ((UInt64, inout [UInt8]) -> Void)? = nil,
                           sourceLocation: SourceLocation = #_sourceLocation) throws {
        let raw = try FileSource(path: try TestImages.path(Self.raw))
        #expect(source.size == raw.size, "virtual size", sourceLocation: sourceLocation)
        let chunk = 4 << 20
        var offset: UInt64 = 0
        var mismatches = 0
        while offset < raw.size {
            let n = Int(min(UInt64(chunk), raw.size - offset))
            var expected = try raw.bytes(at: offset, count: n)
            patch?(offset, &expected)
            // Odd-sized, unaligned reads too: split the chunk at a point that is not a cluster edge.
            let split = 1_234_567 % n
            let actual = try source.bytes(at: offset, count: split) + source.bytes(at: offset + UInt64(split), count: n - split)
            if actual != expected {
                let first = (0..<n).first { actual[$0] != expected[$0] } ?? 0
                Issue.record("content differs at offset \(offset + UInt64(first))", sourceLocation: sourceLocation)
                mismatches += 1
                if mismatches > 3 { return }
            }
            offset += UInt64(n)
        }
    }

    static let identical: [(String, String)] = [
        ("formats-raw.img", "raw"),
        ("formats.qcow2", "qcow2"),
        ("formats-v2.qcow2", "qcow2"),
        ("formats-deflate.qcow2", "qcow2"),
        ("formats-zstd.qcow2", "qcow2"),
        ("formats-l2ext.qcow2", "qcow2"),
        ("formats-4k.qcow2", "qcow2"),
        ("formats-chain/base.qcow2", "qcow2"),
        ("formats-stream.vmdk", "vmdk"),
        ("formats-sparse.vmdk", "vmdk"),
        ("formats-vmdk/flat.vmdk", "vmdk"),
        ("formats-vmdk/split.vmdk", "vmdk"),
        ("formats.vhdx", "vhdx"),
        ("formats-fixed.vhdx", "vhdx"),
        ("formats.vhd", "vpc"),
        ("formats-fixed.vhd", "vpc"),
        ("formats.vdi", "vdi"),
        ("formats-static.vdi", "vdi"),
        ("formats-raw.img.xz", "xz+raw"),
        ("formats-raw-blocks.img.xz", "xz+raw"),
        ("formats.qcow2.xz", "xz+qcow2"),
        ("formats-raw.img.gz", "gzip+raw"),
        ("formats-raw.img.zst", "zstd+raw"),
        ("formats-stream.vmdk.zip", "zip+vmdk"),
        ("formats-raw-stored.zip", "zip+raw"),
        ("formats.ova", "tar+vmdk"),
    ]

    @Test("reads byte-identical to the raw disk", arguments: identical)
    func identicalContent(name: String, format: String) throws {
        let source = try openDiskImage(path: try TestImages.path(name))
        #expect(diskImageFormat(of: source) == format)
        try expectSameContent(source)
    }

    /// The qcow2 chain top: 0x5a at 54 MiB, zeros at 100 MiB, the rest from base through mid.
    static func topPatch(_ offset: UInt64, _ bytes: inout [UInt8]) {
        for (start, value) in [(UInt64(54 << 20), UInt8(0x5A)), (UInt64(100 << 20), UInt8(0))] {
            for i in 0..<65536 {
                let at = start + UInt64(i)
                if at >= offset && at < offset + UInt64(bytes.count) { bytes[Int(at - offset)] = value }
            }
        }
    }

    @Test("backing chain: relative names, a write and a zeroed range in the top image")
    func backingChain() throws {
        let top = try openDiskImage(path: try TestImages.path("formats-chain/top.qcow2"))
        try expectSameContent(top, patch: Self.topPatch)
        // qemu-img's own view of the top image (an independent reader of the whole chain).
        let converted = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-top-\(getpid()).raw").path
        defer { unlink(converted) }
        try TestImages.run(["qemu-img", "convert", "-O", "raw", try TestImages.path("formats-chain/top.qcow2"), converted])
        let qemu = try FileSource(path: converted)
        #expect(qemu.size == top.size)
        var offset: UInt64 = 0
        while offset < qemu.size {
            let n = Int(min(8 << 20, qemu.size - offset))
            #expect(try qemu.bytes(at: offset, count: n) == top.bytes(at: offset, count: n), "at offset \(offset)")
            offset += UInt64(n)
        }
    }

    @Test("backing file found with --backing-dir, and a clear error without it")
    func backingDirectory() throws {
        let top = try TestImages.path("formats-chain/elsewhere-top.qcow2")
        #expect {
            _ = try openDiskImage(path: top)
        } throws: { ($0 as? FWError)?.code == .notFound && "\($0)".contains("elsewhere.img") && "\($0)".contains("--backing-dir") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-backing-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/elsewhere.img", withDestinationPath: try TestImages.path(Self.raw))
        try expectSameContent(try openDiskImage(path: top, options: DiskImageOptions(backingDirectory: dir)))
    }

    @Test("backing chains that loop or name a missing file are clear errors")
    func badChains() throws {
        #expect {
            _ = try openDiskImage(path: try TestImages.path("formats-chain/loop-a.qcow2"))
        } throws: { ($0 as? FWError)?.code == .corrupt && "\($0)".contains("loops") }
        #expect {
            _ = try openDiskImage(path: try TestImages.path("formats-chain/missing-top.qcow2"))
        } throws: { ($0 as? FWError)?.code == .notFound && "\($0)".contains("missing.qcow2") }
    }

    @Test("a backing chain 1000 files deep is refused")
    func deepChain() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-deep-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Layer i is a copy of an empty qcow2 whose backing name is "layer(i-1)": patch the name.
        try TestImages.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "layer0000", "-F", "qcow2", "\(dir)/template", "1M"])
        let template = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/template"))
        let name = Data("layer0000".utf8)
        let at = try #require(template.range(of: name)).lowerBound
        for i in 1...1000 {
            var copy = template
            copy.replaceSubrange(at..<(at + name.count), with: Data(String(format: "layer%04d", i - 1).utf8))
            try copy.write(to: URL(fileURLWithPath: String(format: "\(dir)/layer%04d", i)))
        }
        #expect {
            _ = try openDiskImage(path: "\(dir)/layer1000")
        } throws: { ($0 as? FWError)?.code == .limitExceeded && "\($0)".contains("deep") }
    }

    @Test("internal snapshots are listed and selectable; the default is the active state")
    func snapshots() throws {
        let path = try TestImages.path("formats-snapshot.qcow2")
        let active = try openDiskImage(path: path)
        #expect(diskImageSnapshots(of: active).map(\.name) == ["pristine"])
        try expectSameContent(active) { offset, bytes in
            for i in 0..<65536 {
                let at = UInt64(54 << 20) + UInt64(i)
                if at >= offset && at < offset + UInt64(bytes.count) { bytes[Int(at - offset)] = 0x5A }
            }
        }
        var options = DiskImageOptions()
        options.snapshot = "pristine"
        try expectSameContent(try openDiskImage(path: path, options: options))
        options.snapshot = "nope"
        #expect(throws: FWError.self) { _ = try openDiskImage(path: path, options: options) }
    }

    @Test("a truncated xz and a zip entry bigger than it declares are clear errors")
    func badWrappers() throws {
        #expect {
            _ = try openDiskImage(path: try TestImages.path("formats-bad-truncated.img.xz"))
        } throws: { ($0 as? FWError)?.code == .corrupt && "\($0)".contains("truncated") && "\($0)".contains("formats-bad-truncated") }
        #expect {
            _ = try openDiskImage(path: try TestImages.path("formats-bad-bomb.zip"))
        } throws: { ($0 as? FWError)?.code == .limitExceeded && "\($0)".contains("declared size of 4096") }
    }

    @Test("a multi-block xz is read in place through its index; a single-block one needs the temporary folder")
    func seekableXZ() throws {
        let noTemp = DiskImageOptions(temporaryDirectory: "/nonexistent-fwassemble")
        let indexed = try openDiskImage(path: try TestImages.path("formats-raw-blocks.img.xz"), options: noTemp)
        #expect(diskImageFormat(of: indexed) == "xz+raw")
        try expectSameContent(indexed)
        #expect {
            _ = try openDiskImage(path: try TestImages.path("formats-raw.img.xz"), options: noTemp)
        } throws: { ($0 as? FWError)?.code == .io && "\($0)".contains("/nonexistent-fwassemble") }
        // A damaged block is an error naming the block and its offset (here block 0, read at open).
        let path = try damaged("formats-raw-blocks.img.xz") { bytes in
            for i in 2000..<2100 { bytes[i] ^= 0x55 }
        }
        defer { unlink(path) }
        #expect {
            try readAll(try openDiskImage(path: path, options: noTemp))
        } throws: { ($0 as? FWError)?.code == .corrupt && "\($0)".contains("xz block 0 at offset 12") }
    }

    /// Seconds to read all of `source` in `chunk`-byte reads.
    /// CRC-32 of a whole source read front to back in `chunk`-byte reads.
    func checksum(_ source: any ByteSource, chunk: Int) throws -> UInt32 {
        var buffer = [UInt8](repeating: 0, count: chunk)
        var crc: UInt32 = 0
        var offset: UInt64 = 0
        while offset < source.size {
            let n = try buffer.withUnsafeMutableBytes { try source.read(at: offset, into: $0) }
            guard n > 0 else { break }
            crc = CRC32.checksum(buffer[0..<n], seed: crc)
            offset += UInt64(n)
        }
        return crc
    }

    @Test("a full disk reads the same through qcow2, VMDK and VHDX in 4 KiB, 1 MiB and 8 MiB reads")
    func overhead() throws {
        // 64 MiB of random data (every cluster allocated), converted by qemu-img.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-overhead-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TestImages.run(["sh", "-c", "head -c 67108864 /dev/urandom > \"$0\"", "\(dir)/full.img"])
        for (format, name) in [("qcow2", "full.qcow2"), ("vmdk", "full.vmdk"), ("vhdx", "full.vhdx")] {
            try TestImages.run(["qemu-img", "convert", "-f", "raw", "-O", format, "\(dir)/full.img", "\(dir)/\(name)"])
        }
        let raw = try FileSource(path: "\(dir)/full.img")
        for name in ["full.qcow2", "full.vmdk", "full.vhdx"] {
            let source = try openDiskImage(path: "\(dir)/\(name)")
            #expect(source.size == raw.size)
            for offset in stride(from: UInt64(0), to: raw.size, by: 8 << 20) {
                #expect(try source.bytes(at: offset, count: 8 << 20) == raw.bytes(at: offset, count: 8 << 20), "\(name) at \(offset)")
            }
        }
        for chunk in [4096, 1 << 20] {
            let expected = try checksum(raw, chunk: chunk)
            for name in ["full.qcow2", "full.vmdk", "full.vhdx"] {
                #expect(try checksum(try openDiskImage(path: "\(dir)/\(name)"), chunk: chunk) == expected, "\(name), \(chunk)-byte reads")
            }
        }
        // Speed is measured by `make bench` (the container-format rows of bench/run.sh), not here:
        // a timed assertion fails on a loaded machine and proves nothing on a quiet one.
    }

    // MARK: hand-damaged qcow2 headers and tables

    /// A copy of `name` with `edit` applied, in a temporary folder.
    func damaged(_ name: String, _ edit: (inout [UInt8]) throws -> Void) throws -> String {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try TestImages.path(name))))
        try edit(&bytes)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-damaged-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func putBE(_ value: UInt64, _ bytes: inout [UInt8], at: Int, width: Int) {
        for i in 0..<width { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(width - 1 - i))) }
    }

    func readBE(_ bytes: [UInt8], at: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 << 8 | UInt64(bytes[at + $1]) }
    }

    /// Reads the whole virtual disk, returning the first error.
    func readAll(_ source: any ByteSource) throws {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        while offset < source.size {
            let n = try buffer.withUnsafeMutableBytes { try source.read(at: offset, into: $0) }
            #expect(n > 0)
            offset += UInt64(max(n, 1))
        }
    }

    @Test("qcow2: an L1 table past the end of the file")
    func l1PastEnd() throws {
        let path = try damaged("formats.qcow2") { putBE(1 << 40, &$0, at: 40, width: 8) }
        defer { unlink(path) }
        #expect {
            _ = try openDiskImage(path: path)
        } throws: { ($0 as? FWError)?.code == .corrupt && "\($0)".contains("L1 table at offset 1099511627776") }
    }

    @Test("qcow2: an L2 table and a data cluster past the end of the file")
    func tablesPastEnd() throws {
        let path = try damaged("formats.qcow2") { bytes in
            let l1 = Int(readBE(bytes, at: 40))
            putBE(UInt64(1 << 40) | 1 << 63, &bytes, at: l1, width: 8)
        }
        defer { unlink(path) }
        let source = try openDiskImage(path: path)
        #expect { try readAll(source) } throws: { ($0 as? FWError)?.code == .corrupt && "\($0)".contains("1099511627776") }
    }

    @Test("qcow2: compressed clusters whose size field overflows or whose data is garbage")
    func badCompressedCluster() throws {
        // In formats-deflate.qcow2 find the first compressed L2 entry and point it at garbage.
        var l2Offset = 0, entryOffset = 0
        let path = try damaged("formats-deflate.qcow2") { bytes in
            let l1 = Int(readBE(bytes, at: 40))
            l2Offset = Int(readBE(bytes, at: l1) & 0x00FF_FFFF_FFFF_FE00)
            for i in 0..<(65536 / 8) where readBE(bytes, at: l2Offset + i * 8) & (1 << 62) != 0 {
                entryOffset = l2Offset + i * 8
                break
            }
            // Maximal sector count and an offset near the end of the file.
            putBE(1 << 62 | UInt64.max >> 2 & ~((1 << 54) - 1) | UInt64(bytes.count - 100), &bytes, at: entryOffset, width: 8)
        }
        defer { unlink(path) }
        #expect(entryOffset != 0)
        let source = try openDiskImage(path: path)
        #expect { try readAll(source) } throws: { ($0 as? FWError)?.code == .corrupt && "\($0)".contains("compressed cluster at offset") }
    }

    @Test("qcow2: unsupported features are named")
    func unsupportedFeatures() throws {
        let encrypted = try damaged("formats.qcow2") { putBE(1, &$0, at: 32, width: 4) }
        defer { unlink(encrypted) }
        #expect { _ = try openDiskImage(path: encrypted) } throws: { ($0 as? FWError)?.code == .unsupported && "\($0)".contains("encrypted") }
        let external = try damaged("formats.qcow2") { putBE(1 << 2, &$0, at: 72, width: 8) }
        defer { unlink(external) }
        #expect { _ = try openDiskImage(path: external) } throws: { ($0 as? FWError)?.code == .unsupported && "\($0)".contains("external data file") }
    }

    func putLE(_ value: UInt64, _ bytes: inout [UInt8], at: Int, width: Int) {
        for i in 0..<width { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    @Test("VHD, VDI and VMDK tables pointing past the end of the file")
    func otherTablesPastEnd() throws {
        // VHD dynamic: the BAT offset (dynamic header at the footer's data offset, +16).
        let vhd = try damaged("formats.vhd") { bytes in
            let dynamic = Int(readBE(bytes, at: 16))
            putBE(1 << 40, &bytes, at: dynamic + 16, width: 8)
        }
        // VDI: the block map offset (0x154).
        let vdi = try damaged("formats.vdi") { putLE(0xFFFF_FF00, &$0, at: 0x154, width: 4) }
        // VMDK monolithicSparse: the grain directory offset in sectors (56).
        let vmdk = try damaged("formats-sparse.vmdk") { putLE(1 << 31, &$0, at: 56, width: 8) }
        defer { for p in [vhd, vdi, vmdk] { unlink(p) } }
        for (path, what) in [(vhd, "VHD block allocation table at offset 1099511627776"),
                             (vdi, "VDI block map at offset 4294967040"),
                             (vmdk, "VMDK grain directory at offset 1099511627776")] {
            #expect {
                _ = try openDiskImage(path: path)
            } throws: { ($0 as? FWError)?.code == .corrupt && "\($0)".contains(what) }
        }
    }

    @Test("random byte flips in each container never crash")
    func randomFlips() throws {
        var generator = SystemRandomNumberGenerator()
        for name in ["formats.qcow2", "formats-deflate.qcow2", "formats-stream.vmdk", "formats.vhd", "formats.vdi"] {
            for _ in 0..<10 {
                let path = try damaged(name) { bytes in
                    for _ in 0..<8 {
                        let at = Int.random(in: 0..<min(bytes.count, 1 << 16), using: &generator)
                        bytes[at] = UInt8.random(in: 0...255, using: &generator)
                    }
                }
                defer { unlink(path) }
                if let source = try? openDiskImage(path: path) { _ = try? readAll(source) }
            }
        }
    }
}

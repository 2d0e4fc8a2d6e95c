import DiskImage
@testable import DockerState
import Foundation
import Testing
import TestSupport

/// Layer blobs as `--export-image` reads them from a content store (issue 22): each is checked
/// against its digest and diff id, must end like a tar, and decompresses within `LayerLimits`.
@Suite("Layer blobs: digest, diff id, truncation, decompression bounds")
struct LayerBlobTests {
    /// Bytes printed by a Python snippet (tarfile and gzip are the reference writers).
    static func python(_ script: String) throws -> [UInt8] {
        Array(try TestImages.run(["python3", "-c", "import sys, io, tarfile, gzip\n" + script]))
    }

    /// A small layer tar (two files), as Python's tarfile writes it.
    static func layerTar() throws -> [UInt8] {
        try python("""
            b = io.BytesIO()
            with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
                for name, data in [("etc/hostname", b"web\\n"), ("app/run.sh", b"#!/bin/sh\\necho hi\\n" * 40)]:
                    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
            sys.stdout.buffer.write(b.getvalue())
            """)
    }

    static func digest(_ bytes: [UInt8]) -> String { "sha256:" + SHA256.hex(bytes) }

    func verify(_ blob: [UInt8], digest: String? = nil, diffID: String?, limits: LayerLimits = LayerLimits()) throws -> any ByteSource {
        try LayerBlob.verifiedTar(MemorySource(blob, name: "blob"), digest: digest ?? Self.digest(blob), diffID: diffID,
                                  layer: "image x: layer 1 (blob b)", place: "content/blob", limits: limits)
    }

    @Test("A healthy blob, plain or gzip, gives the uncompressed tar")
    func healthy() throws {
        let tar = try Self.layerTar()
        let gz = try Self.python("sys.stdout.buffer.write(gzip.compress(bytes(\(tar))))")
        for blob in [tar, gz] {
            let source = try verify(blob, diffID: Self.digest(tar))
            #expect(source.size == UInt64(tar.count))
            #expect(try source.bytes(at: 0, count: tar.count) == tar)
        }
    }

    @Test("A blob whose content is not its digest fails, naming the layer")
    func tampered() throws {
        var tar = try Self.layerTar()
        let name = Self.digest(tar)
        tar[600] ^= 0x20
        let error = try #require(throws: FWError.self) { try verify(tar, digest: name, diffID: name) }
        #expect(error.code == .corrupt)
        #expect(error.message.contains("image x: layer 1 (blob b)") && error.message.contains("not the digest it is named by"), "\(error)")
    }

    @Test("An uncompressed content that is not the diff id fails")
    func diffID() throws {
        let tar = try Self.layerTar()
        let error = try #require(throws: FWError.self) { try verify(tar, diffID: "sha256:" + String(repeating: "0", count: 64)) }
        #expect(error.message.contains("not the image's diff id"), "\(error)")
    }

    @Test("A tar cut inside a header or a member fails as truncated, even when its digest and diff id name the cut bytes",
          arguments: [700, 1024, 1536, 2000])
    func truncated(length: Int) throws {
        let cut = Array(try Self.layerTar().prefix(length))
        let error = try #require(throws: FWError.self) { try verify(cut, diffID: Self.digest(cut)) }
        #expect(error.message.contains("truncated"), "\(error)")
    }

    @Test("A gzip bomb stops at the ratio bound (64 MiB floor), and --max-layer-size bounds a small layer; under 10 s")
    func bomb() throws {
        let bomb = try Self.python("sys.stdout.buffer.write(gzip.compress(bytes(200 << 20), 9))")
        #expect(bomb.count < 1 << 20)
        let clock = ContinuousClock()
        let start = clock.now
        let error = try #require(throws: FWError.self) { try verify(bomb, diffID: nil) }
        #expect(clock.now - start < .seconds(10))
        #expect(error.code == .limitExceeded)
        #expect(error.message.contains("decompresses to more than \(64 << 20) bytes") && error.message.contains("--max-layer-ratio 100"), "\(error)")
        let tar = try Self.layerTar()
        let gz = try Self.python("sys.stdout.buffer.write(gzip.compress(bytes(\(tar))))")
        let small = try #require(throws: FWError.self) { try verify(gz, diffID: Self.digest(tar), limits: LayerLimits(maximumSize: 1000)) }
        #expect(small.message.contains("--max-layer-size 1000"), "\(small)")
        // The bound is min(size, max(64 MiB, ratio x compressed)).
        #expect(LayerLimits(maximumSize: 1 << 40, maximumRatio: 10).allowed(compressed: 100 << 20) == 1000 << 20)
        #expect(LayerLimits(maximumSize: 1 << 40, maximumRatio: 10).allowed(compressed: 1) == LayerLimits.ratioFloor)
        #expect(LayerLimits(maximumSize: 5, maximumRatio: .max).allowed(compressed: .max) == 5)
    }
}

import DiskFormats
import DiskImage

/// How far a compressed layer blob may expand when an export decompresses it (docs/limits.md):
/// at most `maximumSize` bytes, and beyond the first `ratioFloor` bytes at most `maximumRatio`
/// times the compressed blob's size. `fwassemble docker --max-layer-size`, `--max-layer-ratio`;
/// the export request's `max_layer_size`, `max_layer_ratio`.
public struct LayerLimits: Sendable, Equatable {
    /// The most bytes one layer may decompress to.
    public var maximumSize: UInt64
    /// The most one layer may expand, as a multiple of its compressed size.
    public var maximumRatio: UInt64
    /// A layer may always decompress to this much, whatever its ratio (small blobs of zeros).
    public static let ratioFloor: UInt64 = 64 << 20
    public static let defaultMaximumSize: UInt64 = 64 << 30
    public static let defaultMaximumRatio: UInt64 = 100

    public init(maximumSize: UInt64 = LayerLimits.defaultMaximumSize, maximumRatio: UInt64 = LayerLimits.defaultMaximumRatio) {
        self.maximumSize = maximumSize
        self.maximumRatio = maximumRatio
    }

    /// The most bytes a blob of `compressed` bytes may decompress to.
    func allowed(compressed: UInt64) -> UInt64 {
        let (scaled, overflow) = compressed.multipliedReportingOverflow(by: maximumRatio)
        return min(maximumSize, max(Self.ratioFloor, overflow ? UInt64.max : scaled))
    }
}

/// A layer blob of the content store, checked as an export reads it: the blob's SHA-256 against
/// the digest it is named by, its decompressed bytes (bounded by `LayerLimits`) against the
/// image's diff id, and the tar's end. Each pass streams (1 MiB pieces), never reading a blob whole.
public enum LayerBlob {
    /// The verified uncompressed tar of one layer. `layer` names it in errors ("image x: layer 2
    /// (blob sha256:...)"); `place` is the blob's path for the error's path.
    public static func verifiedTar(_ raw: any ByteSource, digest: String, diffID: String?, layer: String, place: String,
                            limits: LayerLimits, temporaryDirectory: String? = nil) throws -> any ByteSource {
        let actual = "sha256:" + (try SHA256.hex(of: raw))
        guard actual == digest else {
            throw FWError(.corrupt, "\(layer): the blob's content is \(actual), not the digest it is named by; not exported", path: place)
        }
        var options = DiskImageOptions(temporaryDirectory: temporaryDirectory)
        options.maximumDecompressedSize = limits.allowed(compressed: raw.size)
        let tar: any ByteSource
        do {
            tar = try decompressedStream(raw, options: options)
        } catch let error as FWError where error.code == .limitExceeded {   // the decompressed size (no space left is .io)
            throw FWError(.limitExceeded, "\(layer): decompresses to more than \(options.maximumDecompressedSize) bytes "
                          + "(\(raw.size) compressed; limits: --max-layer-size \(limits.maximumSize), --max-layer-ratio \(limits.maximumRatio)); not exported",
                          path: place)
        } catch {
            let e = FWError(error)
            throw FWError(e.code, "\(layer): \(e.message)", path: place, cause: e)
        }
        let uncompressed = tar === raw ? actual : "sha256:" + (try SHA256.hex(of: tar))
        if let diffID, uncompressed != diffID {
            throw FWError(.corrupt, "\(layer): its uncompressed content is \(uncompressed), not the image's diff id \(diffID); not exported", path: place)
        }
        guard try endsWithEndOfArchive(tar) else {
            throw FWError(.corrupt, "\(layer): the layer tar is truncated (\(tar.size) bytes, no end-of-archive block); not exported", path: place)
        }
        return tar
    }

    /// Whether a tar ends with a whole zero block (tar's end-of-archive marker), as every tar
    /// writer ends one; a tar cut inside a member or a header does not.
    static func endsWithEndOfArchive(_ tar: any ByteSource) throws -> Bool {
        let block = UInt64(TarHeader.blockSize)
        guard tar.size >= block, tar.size % block == 0 else { return false }
        return try tar.bytes(at: tar.size - block, count: Int(block)).allSatisfy { $0 == 0 }
    }
}

import DiskImage

/// A block decompressor: one compressed block in, its decompressed bytes out.
///
/// Filesystem readers (squashfs, EROFS) decompress blocks whose decompressed size they know an
/// upper bound of; `output` is sized by that bound, never by a field of the compressed data.
public protocol Decompressor: Sendable {
    /// Name as the filesystem calls it: "gzip", "xz", "lzma", "lzo", "lz4", "zstd", "microlzma".
    var name: String { get }
    /// Decompresses `input` into `output`; returns the number of bytes written. Throws `.corrupt`
    /// when the data is invalid or does not fit in `output`.
    func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int
}

extension Decompressor {
    /// Convenience over arrays, for tests and small metadata blocks.
    public func decompress(_ input: [UInt8], maximumOutput: Int) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: maximumOutput)
        let n = try input.withUnsafeBytes { inp in
            try output.withUnsafeMutableBytes { try decompress(inp, into: $0) }
        }
        output.removeSubrange(n...)
        return output
    }
}

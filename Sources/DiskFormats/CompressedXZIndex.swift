#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
internal import CLZMA
import DiskImage

/// Random access into an xz file of one stream with several blocks (`xz -T`, `--block-size`),
/// through the stream's index: a read decodes only the blocks it touches (each block at most
/// 64 MiB, decoded blocks kept in a bounded cache). Files that do not qualify (one block, several
/// streams, padding, huge blocks) return nil and are decompressed once instead.
final class XZIndexedSource: ByteSource {
    struct Block {
        var compressedOffset: UInt64   // of the block header, in the file
        var totalSize: UInt64          // header + data + padding + check
        var unpaddedSize: UInt64
        var uncompressedOffset: UInt64
        var uncompressedSize: UInt64
    }

    let file: any ByteSource
    let name: String
    let size: UInt64
    private let blocks: [Block]
    private let check: lzma_check
    private let cache: ClusterCache

    static let maximumBlock: UInt64 = 64 << 20

    init?(_ file: any ByteSource) throws {
        self.file = file
        name = file.name
        guard file.size >= 24 else { return nil }
        // Stream footer: CRC32, backward size, flags, "YZ".
        let footerBytes = try file.bytes(at: file.size - 12, count: 12)
        var footer = lzma_stream_flags()
        guard footerBytes.withUnsafeBufferPointer({ lzma_stream_footer_decode(&footer, $0.baseAddress) }) == LZMA_OK else {
            return nil // stream padding or a damaged footer: the streaming decoder will say
        }
        let headerBytes = try file.bytes(at: 0, count: 12)
        var header = lzma_stream_flags()
        guard headerBytes.withUnsafeBufferPointer({ lzma_stream_header_decode(&header, $0.baseAddress) }) == LZMA_OK,
              lzma_stream_flags_compare(&header, &footer) == LZMA_OK else { return nil }
        let indexSize = footer.backward_size
        guard indexSize <= 16 << 20, indexSize + 24 <= file.size else { return nil }
        let indexOffset = file.size - 12 - indexSize
        let indexBytes = try file.bytes(at: indexOffset, count: Int(indexSize))
        var index: OpaquePointer? = nil
        var memlimit: UInt64 = 64 << 20
        var inPos = 0
        let ret = indexBytes.withUnsafeBufferPointer {
            lzma_index_buffer_decode(&index, &memlimit, nil, $0.baseAddress, &inPos, $0.count)
        }
        guard ret == LZMA_OK, let index else { return nil }
        defer { lzma_index_end(index, nil) }
        // One stream only: its blocks must end exactly where the index starts.
        guard lzma_index_stream_count(index) == 1, lzma_index_block_count(index) >= 2,
              lzma_index_total_size(index) + 12 == indexOffset else { return nil }
        var iter = lzma_index_iter()
        lzma_index_iter_init(&iter, index)
        var list: [Block] = []
        while lzma_index_iter_next(&iter, LZMA_INDEX_ITER_BLOCK) == 0 {
            let b = Block(compressedOffset: iter.block.compressed_file_offset, totalSize: iter.block.total_size,
                          unpaddedSize: iter.block.unpadded_size, uncompressedOffset: iter.block.uncompressed_file_offset,
                          uncompressedSize: iter.block.uncompressed_size)
            guard b.uncompressedSize <= Self.maximumBlock, b.totalSize <= Self.maximumBlock + (1 << 20),
                  b.compressedOffset + b.totalSize <= indexOffset else { return nil }
            list.append(b)
            guard list.count <= 1 << 20 else { return nil }
        }
        blocks = list
        size = lzma_index_uncompressed_size(index)
        check = footer.check
        let largest = list.map(\.uncompressedSize).max() ?? 1
        cache = ClusterCache(entrySize: Int(largest), budget: 128 << 20)
    }

    /// Decodes block `i` (header, then the data, checked by its own check field).
    private func decode(_ i: Int) throws -> [UInt8] {
        try cache.value(UInt64(i)) {
            let b = blocks[i]
            let input = try file.bytes(at: b.compressedOffset, count: Int(b.totalSize))
            guard let first = input.first, first != 0 else {
                throw FWError(.corrupt, "xz block \(i) at offset \(b.compressedOffset): bad block header", disk: name)
            }
            let filters = UnsafeMutablePointer<lzma_filter>.allocate(capacity: Int(LZMA_FILTERS_MAX) + 1)
            defer { filters.deallocate() }
            var block = lzma_block()
            block.version = 1
            block.check = check
            block.filters = filters
            block.header_size = (UInt32(first) + 1) * 4
            var output = [UInt8](repeating: 0, count: Int(b.uncompressedSize))
            let ret: lzma_ret = input.withUnsafeBufferPointer { inp in
                var r = lzma_block_header_decode(&block, nil, inp.baseAddress)
                guard r == LZMA_OK else { return r }
                defer { lzma_filters_free(filters, nil) }
                r = lzma_block_compressed_size(&block, b.unpaddedSize)
                guard r == LZMA_OK else { return r }
                var inPos = Int(block.header_size)
                var outPos = 0
                return output.withUnsafeMutableBufferPointer { out in
                    lzma_block_buffer_decode(&block, nil, inp.baseAddress, &inPos, inp.count, out.baseAddress, &outPos, out.count)
                }
            }
            guard ret == LZMA_OK else {
                throw FWError(.corrupt, "xz block \(i) at offset \(b.compressedOffset): corrupt (liblzma error \(ret.rawValue))", disk: name)
            }
            return output
        }
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size else { return 0 }
        let total = Int(min(UInt64(buffer.count), size - offset))
        var done = 0
        // The last block starting at or before the offset.
        var lo = 0, hi = blocks.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if blocks[mid].uncompressedOffset <= offset { lo = mid } else { hi = mid - 1 }
        }
        var i = lo
        while done < total && i < blocks.count {
            let b = blocks[i]
            let pos = offset + UInt64(done)
            let within = pos - b.uncompressedOffset
            guard within < b.uncompressedSize else { i += 1; continue }
            let n = Int(min(UInt64(total - done), b.uncompressedSize - within))
            let data = try decode(i)
            data.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + n)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: src[Int(within)..<(Int(within) + n)]))
            }
            done += n
            i += 1
        }
        return done
    }
}

